"""Deprecated: the export moved out of the component package.

Reading an export (`read_manifest`, `find_exported_model`, `ExportedModel`, `MANIFEST_NAME`) lives next to the
loader in `haystack_integrations.components.rankers.crossencoder._engine.manifest`; writing one
(`export_cross_encoder`, `export_bi_encoder`, the options and presets) in the tooling's `crossencoder_haystack.export`.
The names this module held still import from here, with a `DeprecationWarning` naming their new place.
"""

import importlib
import warnings
from typing import Any

_MANIFEST = "haystack_integrations.components.rankers.crossencoder._engine.manifest"
_EXPORTING = "crossencoder_haystack.export.exporting"
_MOVED = {
    "ExportedModel": _MANIFEST,
    "MANIFEST_NAME": _MANIFEST,
    "find_exported_model": _MANIFEST,
    "read_manifest": _MANIFEST,
    "AUTO_QUANTIZATION": _EXPORTING,
    "EXPORT_BACKENDS": _EXPORTING,
    "OPTIMIZATION_LEVELS": _EXPORTING,
    "QUANTIZATION_PRESETS": _EXPORTING,
    "auto_quantization_preset": _EXPORTING,
    "export_bi_encoder": _EXPORTING,
    "export_cross_encoder": _EXPORTING,
    "validate_export_options": _EXPORTING,
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    warnings.warn(
        f"Importing {name!r} from {__name__!r} is deprecated; import it from {_MOVED[name]!r}.",
        DeprecationWarning,
        stacklevel=2,
    )
    # The writing half is tooling (the `export` extra's dependencies): imported only when an old import asks for it.
    return getattr(importlib.import_module(_MOVED[name]), name)
