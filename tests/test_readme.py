"""Every code block in README.md is executed (Python, YAML) or checked against the CLI (shell), so it cannot rot.

Hub model ids in the README are swapped for local models: the cross-encoder for the tiny test model, the
embedding model for the bundled all-MiniLM-L6-v2.
"""

import re
import shlex
from pathlib import Path

import pytest
from haystack import Pipeline

from crossencoder_haystack.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
HUB_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L6-v2"
HUB_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(README.read_text(encoding="utf-8")) if lang == language]


def _localized(code: str, model_path: Path, minilm_path: Path) -> str:
    return code.replace(HUB_CROSS_ENCODER, str(model_path)).replace(HUB_EMBEDDER, str(minilm_path))


def test_the_readme_has_code_blocks_of_each_kind():
    assert _blocks("python") and _blocks("yaml") and _blocks("bash")


def _loads_real_minilm(code: str) -> bool:
    return HUB_EMBEDDER in code or "bundled_minilm_path" in code


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(index, marks=pytest.mark.integration) if _loads_real_minilm(code) else index
        for index, code in enumerate(_blocks("python"))
    ],
)
def test_python_blocks_run(index, spread_model_path, minilm_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _localized(_blocks("python")[index], spread_model_path, minilm_path)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("index", range(len(_blocks("yaml"))))
def test_yaml_blocks_load_as_pipelines(index, spread_model_path, minilm_path):
    pipeline = Pipeline.loads(_localized(_blocks("yaml")[index], spread_model_path, minilm_path))
    assert pipeline.graph.nodes


def _shell_commands() -> list[str]:
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in re.split(r"&&|;", line))
    return commands


def test_every_rerank_command_in_the_readme_parses():
    parser = build_parser()
    rerank_commands = [c for c in _shell_commands() if re.match(r"^(\S*/)?rerank\b", c)]
    assert rerank_commands
    for command in rerank_commands:
        arguments = shlex.split(command, comments=True)[1:]
        try:
            parsed = parser.parse_args(arguments)
        except SystemExit as error:  # argparse exits on unknown commands or flags
            if error.code != 0:
                raise AssertionError(f"README command does not parse: {command}") from error
            continue
        assert getattr(parsed, "func", None) is not None or arguments in ([], ["--help"]), command
