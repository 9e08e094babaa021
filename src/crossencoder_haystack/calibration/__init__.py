"""Calibrated reranker scores (`rerank calibrate`): fit a logit -> P(relevant) mapping and measure it.

`calibrate(...)` fits the mapping on judged pairs and stores it in the model directory (`calibration.json`, read
by `CrossEncoderRanker`, whose `activation="calibrated"` applies it); `fit_mapping` and the metrics work on plain
arrays of logits, probabilities and labels.

Names are imported on first use, so that `rerank --help` (which imports `calibration.command`) stays fast.
"""

from typing import TYPE_CHECKING

from crossencoder_haystack._lazy_imports import lazy_exports

if TYPE_CHECKING:
    from crossencoder_haystack.calibration.fitting import FIT_METHODS, FittedMapping, build_calibration, fit_mapping
    from crossencoder_haystack.calibration.metrics import (
        CalibrationMetrics,
        brier_score,
        calibration_metrics,
        expected_calibration_error,
        plot_reliability,
    )
    from crossencoder_haystack.calibration.model_calibration import CalibrationResult, calibrate, print_summary
    from crossencoder_haystack.calibration.pairs import JudgedPairs, load_judged_pairs

_EXPORTS = {
    "CalibrationResult": "model_calibration",
    "calibrate": "model_calibration",
    "print_summary": "model_calibration",
    "FIT_METHODS": "fitting",
    "FittedMapping": "fitting",
    "build_calibration": "fitting",
    "fit_mapping": "fitting",
    "CalibrationMetrics": "metrics",
    "brier_score": "metrics",
    "calibration_metrics": "metrics",
    "expected_calibration_error": "metrics",
    "plot_reliability": "metrics",
    "JudgedPairs": "pairs",
    "load_judged_pairs": "pairs",
}

__all__ = [
    "FIT_METHODS",
    "CalibrationMetrics",
    "CalibrationResult",
    "FittedMapping",
    "JudgedPairs",
    "brier_score",
    "build_calibration",
    "calibrate",
    "calibration_metrics",
    "expected_calibration_error",
    "fit_mapping",
    "load_judged_pairs",
    "plot_reliability",
    "print_summary",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
