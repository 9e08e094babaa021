"""The optional library a backend needs, imported when the backend is first used."""

import importlib
from types import ModuleType


def import_backend_library(library: str, backend: str) -> ModuleType:
    """
    `library` (e.g. `"onnxruntime"`), or an ImportError that says which extra of this package installs it.

    :param library: The module to import.
    :param backend: The ranker's `backend` value that needs it, which is also the name of the extra.
    :raises ImportError: If `library` is not installed.
    """
    try:
        return importlib.import_module(library)
    except ImportError as error:
        msg = f"backend='{backend}' needs {library}: pip install 'crossencoder-haystack[{backend}]'."
        raise ImportError(msg) from error
