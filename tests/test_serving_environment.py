"""`rerank serve` flags fall back to `RERANK_<FLAG>` variables, as text-embeddings-inference's do; the flag wins."""

import argparse
from typing import Any

import pytest

from crossencoder_haystack.cli import build_parser, main

SERVE_FLAG_VARIABLES = {
    "--model": "RERANK_MODEL",
    "--backend": "RERANK_BACKEND",
    "--host": "RERANK_HOST",
    "--port": "RERANK_PORT",
    "--api-key-env": "RERANK_API_KEY_ENV",
    "--no-auth": "RERANK_NO_AUTH",
    "--max-length": "RERANK_MAX_LENGTH",
    "--batch-size": "RERANK_BATCH_SIZE",
    "--num-threads": "RERANK_NUM_THREADS",
    "--precision": "RERANK_PRECISION",
    "--truncation": "RERANK_TRUNCATION",
    "--model-name": "RERANK_MODEL_NAME",
    "--batch-window-ms": "RERANK_BATCH_WINDOW_MS",
    "--max-batch-documents": "RERANK_MAX_BATCH_DOCUMENTS",
    "--max-queue": "RERANK_MAX_QUEUE",
    "--max-documents": "RERANK_MAX_DOCUMENTS",
    "--max-document-chars": "RERANK_MAX_DOCUMENT_CHARS",
    "--max-body-bytes": "RERANK_MAX_BODY_BYTES",
    "--request-timeout": "RERANK_REQUEST_TIMEOUT",
    "--log-level": "RERANK_LOG_LEVEL",
    "--engine": "RERANK_ENGINE",
    "--ray-address": "RERANK_RAY_ADDRESS",
    "--replicas": "RERANK_REPLICAS",
    "--cpus-per-replica": "RERANK_CPUS_PER_REPLICA",
    "--gpus-per-replica": "RERANK_GPUS_PER_REPLICA",
}


@pytest.fixture(autouse=True)
def _no_serve_variables(monkeypatch):
    for variable in SERVE_FLAG_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)


def _serve_parser() -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["serve"]


def _parse(*arguments: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *arguments])


def test_every_flag_has_its_variable_and_help_shows_it():
    parser = _serve_parser()
    flags = {a.option_strings[-1] for a in parser._actions if a.option_strings} - {"--help", "--debug"}
    assert flags == set(SERVE_FLAG_VARIABLES)
    text = " ".join(parser.format_help().split())
    for flag, variable in SERVE_FLAG_VARIABLES.items():
        assert f"[env: {variable}]" in text, flag


def test_variables_fill_the_flags_with_their_types(monkeypatch):
    variables = {
        "RERANK_MODEL": "/models/x",
        "RERANK_PORT": "9001",
        "RERANK_HOST": "0.0.0.0",
        "RERANK_NO_AUTH": "true",
        "RERANK_MAX_LENGTH": "256",
        "RERANK_BATCH_WINDOW_MS": "0",
        "RERANK_REQUEST_TIMEOUT": "2.5",
        "RERANK_PRECISION": "fp32",
        "RERANK_LOG_LEVEL": "debug",
        "RERANK_ENGINE": "ray",
        "RERANK_REPLICAS": "2",
        "RERANK_CPUS_PER_REPLICA": "0.5",
    }
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)

    args = _parse()

    assert (args.model, args.port, args.host, args.no_auth, args.max_length) == (
        "/models/x",
        9001,
        "0.0.0.0",
        True,
        256,
    )
    assert (args.batch_window_ms, args.request_timeout, args.precision) == (0.0, 2.5, "fp32")
    assert (args.log_level, args.engine, args.replicas, args.cpus_per_replica) == ("debug", "ray", 2, 0.5)
    assert args.max_queue == 64 and args.batch_size == 16  # no variable: the default


def test_a_flag_on_the_command_line_wins_over_its_variable(monkeypatch):
    monkeypatch.setenv("RERANK_MODEL", "/models/from-env")
    monkeypatch.setenv("RERANK_PORT", "9001")
    monkeypatch.setenv("RERANK_NO_AUTH", "false")

    args = _parse("--model", "/models/x", "--port", "9002", "--no-auth")

    assert (args.model, args.port, args.no_auth) == ("/models/x", 9002, True)


def test_an_empty_variable_counts_as_unset_and_model_stays_required(monkeypatch, capsys):
    monkeypatch.setenv("RERANK_PORT", "")
    monkeypatch.setenv("RERANK_MODEL", " ")
    with pytest.raises(SystemExit):
        _parse()
    assert "the following arguments are required: --model" in capsys.readouterr().err
    assert _parse("--model", "m").port == 8080


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RERANK_PORT", "eighty", "argument --port: RERANK_PORT='eighty' is not a valid int"),
        ("RERANK_PRECISION", "fp64", "argument --precision: RERANK_PRECISION='fp64' is not one of auto, fp32"),
        ("RERANK_NO_AUTH", "maybe", "argument --no-auth: RERANK_NO_AUTH='maybe': expected 1, true, yes or on"),
        ("RERANK_REPLICAS", "0", "argument --replicas: RERANK_REPLICAS='0': expected an integer >= 1"),
        ("RERANK_REQUEST_TIMEOUT", "soon", "RERANK_REQUEST_TIMEOUT='soon' is not a valid float"),
    ],
)
def test_a_bad_value_in_a_variable_is_an_error_naming_the_variable(monkeypatch, capsys, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        _parse("--model", "m")
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_variable_is_only_checked_by_serve(monkeypatch):
    monkeypatch.setenv("RERANK_PORT", "eighty")
    assert build_parser().parse_args(["version"]).command == "version"
    assert _parse("--model", "m", "--port", "1").port == 1  # the flag wins, the variable is never read


def _served_with(monkeypatch, *arguments: str) -> dict[str, Any]:
    from crossencoder_haystack.serving import server

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(server, "serve", lambda model, **kwargs: calls.append({"model": model, **kwargs}))
    assert main(["serve", *arguments]) == 0
    return calls[0]


def test_serve_gets_the_variables_values(monkeypatch):
    monkeypatch.setenv("RERANK_MODEL", "/models/x")
    monkeypatch.setenv("RERANK_MAX_QUEUE", "3")
    monkeypatch.setenv("RERANK_TRUNCATION", "query_window")

    call = _served_with(monkeypatch, "--port", "9000")

    assert (call["model"], call["port"], call["limits"].max_queue, call["truncation"]) == (
        "/models/x",
        9000,
        3,
        "query_window",
    )


def test_an_auth_flag_on_the_command_line_wins_over_the_other_ones_variable(monkeypatch, capsys):
    monkeypatch.setenv("RERANK_NO_AUTH", "1")
    call = _served_with(monkeypatch, "--model", "m", "--api-key-env", "MY_KEY")
    assert (call["api_key_env"], call["no_auth"]) == ("MY_KEY", False)

    monkeypatch.delenv("RERANK_NO_AUTH")
    monkeypatch.setenv("RERANK_API_KEY_ENV", "MY_KEY")
    call = _served_with(monkeypatch, "--model", "m", "--no-auth")
    assert (call["api_key_env"], call["no_auth"]) == (None, True)

    monkeypatch.setenv("RERANK_NO_AUTH", "yes")
    assert main(["serve", "--model", "m"]) == 2
    assert "RERANK_API_KEY_ENV and RERANK_NO_AUTH exclude each other" in capsys.readouterr().err
