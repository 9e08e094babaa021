"""Package `__init__` modules whose names are imported on first use, so that `rerank --help` stays fast.

A package lists its names twice: under `if TYPE_CHECKING:` as ordinary imports, which type checkers and editors
follow (go-to-definition, completion), and in the `{name: module}` map given to `lazy_exports`, which makes the
package's `__getattr__` import the module only when the name is first read. A test keeps the two lists equal.
"""

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """
    A module-level `__getattr__` for `package` that imports `package.<module>` when one of its names is first read.

    Usage example (in a package's `__init__.py`):

    ```python
    from typing import TYPE_CHECKING

    from crossencoder_haystack._lazy_imports import lazy_exports

    if TYPE_CHECKING:
        from crossencoder_haystack.calibration.fitting import fit_mapping

    __getattr__ = lazy_exports(__name__, {"fit_mapping": "fitting"})
    ```

    :param package: The package's `__name__`.
    :param exports: Exported name -> the submodule (relative to `package`) that defines it, or a module's full
        dotted name (one with a dot) for a name defined outside the package.
    :returns: The function to assign to the package's `__getattr__`.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        return getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), name)

    return __getattr__
