"""Calibrated reranker scores (`rerank calibrate`): fit a logit -> P(relevant) mapping and measure it.

`calibrate(...)` fits the mapping on judged pairs and stores it in the model directory (`calibration.json`, read
by `CrossEncoderRanker`, whose `activation="calibrated"` applies it); `fit_mapping` and the metrics work on plain
arrays of logits, probabilities and labels.

Names are imported on first use, so that `rerank --help` (which imports `calibration.command`) stays fast.
"""

import importlib
from typing import Any

_MODULES = {
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

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
