"""Cross-encoder rerankers for Haystack: the components users construct and the errors they catch.

The inference engine (pair encoding, batching, scoring backends, model loading, ...) lives in the private
`_engine` subpackage. Names this package exported before, and the engine modules' old paths
(`...crossencoder.scoring`, `...crossencoder.model_loading`, ...), still import, with a `DeprecationWarning`
naming the new place.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

from haystack_integrations.components.rankers.crossencoder._engine.model_loading import ModelNotAvailableError
from haystack_integrations.components.rankers.crossencoder.calibration import CalibrationError
from haystack_integrations.components.rankers.crossencoder.cascade import CascadeRanker
from haystack_integrations.components.rankers.crossencoder.fallback import FallbackRanker
from haystack_integrations.components.rankers.crossencoder.ranker import CrossEncoderRanker

__all__ = ["CalibrationError", "CascadeRanker", "CrossEncoderRanker", "FallbackRanker", "ModelNotAvailableError"]

# Names this package exported before it showed only the components: name -> the module that holds it now.
_DEPRECATED_NAMES = {
    "ACTIVATIONS": f"{__name__}._engine.activations",
    "apply_activation": f"{__name__}._engine.activations",
    "AGGREGATIONS": f"{__name__}._engine.aggregation",
    "aggregate_scores": f"{__name__}._engine.aggregation",
    "hub_is_reachable": f"{__name__}._engine.model_loading",
    "load_cross_encoder": f"{__name__}._engine.model_loading",
    "FUSION_FILE": f"{__name__}.fusion",
    "FUSIONS": f"{__name__}.fusion",
    "fuse_scores": f"{__name__}.fusion",
    "read_fusion_defaults": f"{__name__}.fusion",
    "write_fusion_defaults": f"{__name__}.fusion",
}

# Engine modules that lived at the package level: old submodule name -> its module in `_engine`.
_MOVED_MODULES = frozenset(
    {
        "activations",
        "aggregation",
        "batching",
        "bi_encoder_scoring",
        "model_loading",
        "onnx_backend",
        "openvino_backend",
        "pair_encoding",
        "passage_selection",
        "precision",
        "score_cache",
        "scoring",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _DEPRECATED_NAMES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    home = _DEPRECATED_NAMES[name]
    warnings.warn(
        f"Importing {name!r} from {__name__!r} is deprecated; import it from {home!r}.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an engine module's old path (`...crossencoder.scoring`) as its `_engine` module, with a warning."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        parent, _, child = fullname.rpartition(".")
        if parent != __name__ or child not in _MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new_name = f"{__name__}._engine.{spec.name.rpartition('.')[2]}"
        warnings.warn(
            f"The module {spec.name!r} is deprecated; it moved to the private {new_name!r}. Import the components "
            f"from {__name__!r}.",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new_name)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set the old name's spec on the engine module: give it back its own.
        spec = module.__spec__
        assert spec is not None  # the import system sets a spec before it calls exec_module
        module.__spec__ = spec.loader_state


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
