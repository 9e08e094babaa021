"""Exporting rerankers for fast CPU inference (`rerank export`): ONNX or OpenVINO, optimized, int8-quantized.

`export_cross_encoder` writes a directory that `CrossEncoderRanker(model=DIR, backend="onnx"|"openvino")` loads
(the ranker reads its manifest with `read_manifest`, which lives next to the component's loader). This package
also holds what the command line needs on top: calibration pairs from a file and a default output directory.
"""

from typing import TYPE_CHECKING

from crossencoder_haystack._lazy_imports import lazy_exports

if TYPE_CHECKING:
    from crossencoder_haystack.export.calibration import read_calibration_pairs
    from crossencoder_haystack.export.command import default_output_dir
    from crossencoder_haystack.export.exporting import (
        AUTO_QUANTIZATION,
        EXPORT_BACKENDS,
        OPTIMIZATION_LEVELS,
        QUANTIZATION_PRESETS,
        auto_quantization_preset,
        export_bi_encoder,
        export_cross_encoder,
        validate_export_options,
    )
    from haystack_integrations.components.rankers.crossencoder._engine.manifest import ExportedModel, read_manifest

# Imported on first use: `rerank --help` imports this package and must not pay for importing haystack.
_EXPORTS = {
    "read_calibration_pairs": "calibration",
    "default_output_dir": "command",
    "AUTO_QUANTIZATION": "exporting",
    "EXPORT_BACKENDS": "exporting",
    "OPTIMIZATION_LEVELS": "exporting",
    "QUANTIZATION_PRESETS": "exporting",
    "auto_quantization_preset": "exporting",
    "export_bi_encoder": "exporting",
    "export_cross_encoder": "exporting",
    "validate_export_options": "exporting",
    "ExportedModel": "haystack_integrations.components.rankers.crossencoder._engine.manifest",
    "read_manifest": "haystack_integrations.components.rankers.crossencoder._engine.manifest",
}

__all__ = [
    "AUTO_QUANTIZATION",
    "EXPORT_BACKENDS",
    "OPTIMIZATION_LEVELS",
    "QUANTIZATION_PRESETS",
    "ExportedModel",
    "auto_quantization_preset",
    "default_output_dir",
    "export_bi_encoder",
    "export_cross_encoder",
    "read_calibration_pairs",
    "read_manifest",
    "validate_export_options",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
