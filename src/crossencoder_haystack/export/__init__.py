"""Exporting rerankers for fast CPU inference (`rerank export`): ONNX or OpenVINO, optimized, int8-quantized.

The export itself lives with the ranker component (which loads what it writes): `export_cross_encoder` is
re-exported here. This package adds what the command line needs on top: calibration pairs from a file and a
default output directory.
"""

from typing import Any

from crossencoder_haystack.export.calibration import read_calibration_pairs
from crossencoder_haystack.export.command import default_output_dir

_COMPONENT_NAMES = (
    "AUTO_QUANTIZATION",
    "EXPORT_BACKENDS",
    "OPTIMIZATION_LEVELS",
    "QUANTIZATION_PRESETS",
    "ExportedModel",
    "auto_quantization_preset",
    "export_bi_encoder",
    "export_cross_encoder",
    "read_manifest",
)

__all__ = [*_COMPONENT_NAMES, "default_output_dir", "read_calibration_pairs"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `rerank --help` imports this package and must not pay for importing haystack.
    if name in _COMPONENT_NAMES:
        from haystack_integrations.components.rankers.crossencoder import export

        return getattr(export, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
