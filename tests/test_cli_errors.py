"""The `rerank` command prints expected errors as one line on stderr (exit 2); `--debug` shows the traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from haystack.core.errors import DeserializationError, PipelineError

from crossencoder_haystack import cli
from crossencoder_haystack.cli import main
from crossencoder_haystack.training import DataProblem, TrainingDataError
from haystack_integrations.components.rankers.crossencoder import ModelNotAvailableError

EXPECTED = [
    TrainingDataError([DataProblem("train.csv", 3, "label 2.5 is above 1")]),
    ValueError("batch_size must be > 0, got 0."),
    FileNotFoundError("Training data file x.jsonl does not exist."),
    ModelNotAvailableError("Could not load the cross-encoder model '/models/gone'."),
    DeserializationError("Refusing to deserialize a class from module 'os': not on the allowlist."),
    PipelineError("Component 'mypkg.Ranker' (name: 'ranker') not imported."),
]


def _raising(error: BaseException):
    def handler(_args):
        raise error

    return handler


@pytest.mark.parametrize("error", EXPECTED, ids=lambda error: type(error).__name__)
def test_expected_errors_print_one_message_and_exit_2(error, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_version", _raising(error))

    assert main(["version"]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"rerank version: error: {error}\n")
    assert "Traceback" not in err and "--debug" in err


@pytest.mark.parametrize("argv", [["--debug", "version"], ["version", "--debug"]])
def test_debug_shows_the_traceback_wherever_it_is_given(argv, monkeypatch):
    monkeypatch.setattr(cli, "_version", _raising(ValueError("bad parameter")))
    with pytest.raises(ValueError, match="bad parameter"):
        main(argv)


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    monkeypatch.setattr(cli, "_version", _raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["version"])


@pytest.fixture
def collection(tmp_path) -> Path:
    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "Cats purr."}) + "\n", encoding="utf-8")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "cats"}) + "\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("q1\td1\t1\n", encoding="utf-8")
    return root


def _evaluate(collection: Path, tmp_path: Path, *extra: str) -> list[str]:
    arguments = ["evaluate", "--dataset", str(collection), "--k", "1", "--latency-queries", "0", "--no-progress"]
    return [*arguments, "--cache-dir", str(tmp_path / "cache"), *extra]


def test_training_data_errors_name_file_and_line_without_traceback(tmp_path, capsys):
    data = tmp_path / "pairs.csv"
    data.write_text("query,document,label\nq0,ok,1\nq0,version 2,1,0\n", encoding="utf-8")

    assert main(["train", "--data", str(data), "--output", str(tmp_path / "model")]) == 2

    err = capsys.readouterr().err
    assert err.startswith("rerank train: error: 1 problem(s) in the pairs data")
    assert f"{data}:3: the row has 4 fields but the header has 3 columns" in err
    assert "Traceback" not in err
    assert not (tmp_path / "model").exists()


def test_evaluate_errors_from_data_yaml_and_models(collection, tmp_path, capsys):
    judged = tmp_path / "judged.csv"
    judged.write_text("query,document,grade\ncats,d1,1,extra\n", encoding="utf-8")
    assert main(_evaluate(judged, tmp_path, "--corpus", str(collection / "corpus.jsonl"))) == 2
    assert f"rerank evaluate: error: {judged}:2: the row has 4 fields" in capsys.readouterr().err

    outside = tmp_path / "outside.yaml"
    outside.write_text("type: os.path.Ranker\ninit_parameters: {}\n", encoding="utf-8")
    assert main(_evaluate(collection, tmp_path, "--ranker", str(outside))) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank evaluate: error: Refusing to deserialize a class from module 'os.path'")
    assert "HAYSTACK_DESERIALIZATION_ALLOWLIST" in err and "Traceback" not in err

    gone = tmp_path / "gone.yaml"
    ranker_type = "haystack_integrations.components.rankers.crossencoder.ranker.CrossEncoderRanker"
    gone.write_text(f"type: {ranker_type}\ninit_parameters:\n  model: {tmp_path / 'no-model'}\n", encoding="utf-8")
    assert main(_evaluate(collection, tmp_path, "--ranker", str(gone))) == 2
    assert "rerank evaluate: error: Could not load the cross-encoder model" in capsys.readouterr().err


def test_the_installed_command_prints_no_traceback_unless_debug(tmp_path):
    command = [sys.executable, "-m", "crossencoder_haystack.cli", "evaluate", "--dataset", str(tmp_path / "none")]
    environment = {**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False"}

    plain = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, env=environment, timeout=600)

    assert plain.returncode == 2
    assert plain.stderr.startswith("rerank evaluate: error: dataset ")
    assert "does not exist" in plain.stderr and "Traceback" not in plain.stderr
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr
