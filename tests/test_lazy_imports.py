"""The tooling packages that import their names on first use: what type checkers see matches what runs."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import crossencoder_haystack

LAZY_PACKAGES = ("calibration", "distributed", "evaluation", "export", "labelling")


def _type_checking_imports(package: str) -> dict[str, str]:
    """Name -> submodule (or the full name of a module outside the package), from its `if TYPE_CHECKING:` block."""
    source = Path(crossencoder_haystack.__file__).parent / package / "__init__.py"
    imports = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                prefix = f"crossencoder_haystack.{package}."
                assert statement.module.startswith((prefix, "haystack_integrations."))
                imports.update({alias.name: statement.module.removeprefix(prefix) for alias in statement.names})
    return imports


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_the_names_type_checkers_see_are_the_names_imported_on_first_use(package):
    module = importlib.import_module(f"crossencoder_haystack.{package}")
    assert _type_checking_imports(package) == module._EXPORTS
    assert sorted(module.__all__) == sorted(module._EXPORTS)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        module.nope  # noqa: B018


def test_every_exported_name_resolves():
    # Only the packages whose modules need no optional extra at import time: distributed's need ray for some names.
    for package in ("calibration", "evaluation"):
        module = importlib.import_module(f"crossencoder_haystack.{package}")
        for name in module.__all__:
            value = getattr(module, name)
            assert name.isupper() or value.__name__ == name


def test_importing_the_packages_imports_no_optional_extra():
    code = (
        "import sys\n"
        "import crossencoder_haystack.calibration\n"
        "import crossencoder_haystack.distributed\n"
        "import crossencoder_haystack.evaluation\n"
        "print(sorted(name for name in ('ray', 'sklearn', 'torch', 'haystack') if name in sys.modules))"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "[]"
