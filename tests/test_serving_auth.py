"""Who may call `rerank serve`: an API key, or an explicit choice not to have one (issue #13, defect 9)."""

import logging
from typing import Any

import pytest

from crossencoder_haystack.cli import main
from crossencoder_haystack.serving.auth import AuthConfigurationError, is_loopback, resolve_api_key


@pytest.mark.parametrize(
    ("api_key_env", "environ", "host", "expected"),
    [
        ("MY_KEY", {"MY_KEY": " s3cret\n"}, "0.0.0.0", "s3cret"),
        (None, {"RERANK_API_KEY": "k"}, "0.0.0.0", "k"),
        (None, {}, "127.0.0.1", None),
        (None, {"RERANK_API_KEY": "  "}, "localhost", None),
        (None, {}, "::1", None),
    ],
)
def test_the_api_key_comes_from_the_chosen_variable_or_loopback_serves_without(api_key_env, environ, host, expected):
    assert resolve_api_key(api_key_env, no_auth=False, host=host, environ=environ) == expected


@pytest.mark.parametrize(
    ("api_key_env", "environ", "host", "message"),
    [
        ("MY_KEY", {}, "127.0.0.1", "--api-key-env names MY_KEY, which is not set"),
        ("MY_KEY", {"MY_KEY": ""}, "127.0.0.1", "MY_KEY, which is empty"),
        ("MY_KEY", {"MY_KEY": " \n"}, "127.0.0.1", "MY_KEY, which is empty"),
        ("", {}, "127.0.0.1", "--api-key-env is empty"),
        (None, {}, "0.0.0.0", "0.0.0.0 is not a loopback address"),
        (None, {}, "::", ":: is not a loopback address"),
        (None, {"RERANK_API_KEY": ""}, "192.168.1.5", "RERANK_API_KEY is not set"),
        (None, {}, "rerank.example.org", "pass --no-auth"),
    ],
)
def test_an_unset_key_refuses_to_start_with_a_clear_message(api_key_env, environ, host, message):
    with pytest.raises(AuthConfigurationError, match="--no-auth") as error:
        resolve_api_key(api_key_env, no_auth=False, host=host, environ=environ)
    assert message in str(error.value)


def test_no_auth_is_an_explicit_choice_on_any_host_and_excludes_a_key_variable():
    assert resolve_api_key(None, no_auth=True, host="0.0.0.0", environ={"RERANK_API_KEY": "k"}) is None
    with pytest.raises(AuthConfigurationError, match="exclude each other"):
        resolve_api_key("MY_KEY", no_auth=True, host="127.0.0.1", environ={"MY_KEY": "k"})


def test_serving_without_a_key_on_loopback_warns(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_api_key(None, no_auth=False, host="127.0.0.1", environ={}) is None
    assert "No API key" in caplog.text and "loopback" in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.5", "example.org", ""])
def test_hosts_that_are_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--api-key-env", "RERANK_TEST_UNSET_KEY"], "--api-key-env names RERANK_TEST_UNSET_KEY, which is not set"),
        (["--host", "0.0.0.0"], "0.0.0.0 is not a loopback address"),
    ],
)
def test_the_cli_refuses_to_start_without_a_key_before_loading_the_model(
    arguments, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("RERANK_TEST_UNSET_KEY", raising=False)
    monkeypatch.delenv("RERANK_API_KEY", raising=False)

    # The model does not exist: had the service gone on, loading it would have failed with a traceback.
    status = main(["serve", "--model", str(tmp_path / "no-such-model"), *arguments])

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("rerank serve: error: ") and message in err and "--no-auth" in err
    assert "Traceback" not in err


def test_the_cli_reports_bad_limits_without_a_traceback(capsys):
    assert main(["serve", "--model", "/models/x", "--max-queue", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank serve: error: max_queue must be a positive integer") and "Traceback" not in err


def test_the_cli_refuses_a_key_variable_together_with_no_auth(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "/models/x", "--api-key-env", "MY_KEY", "--no-auth"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_serve_passes_the_resolved_key_to_the_app(tiny_model_path, monkeypatch):
    from crossencoder_haystack.serving import server

    created: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_create_app(model: Any, **kwargs: Any) -> None:
        created.update(kwargs)
        raise Stop

    monkeypatch.setattr(server, "create_app", fake_create_app)
    monkeypatch.setenv("MY_RERANK_KEY", "s3cret\n")
    with pytest.raises(Stop):
        server.serve(tiny_model_path, host="0.0.0.0", api_key_env="MY_RERANK_KEY")
    assert created["api_key"] == "s3cret"

    monkeypatch.delenv("RERANK_API_KEY", raising=False)
    with pytest.raises(Stop):
        server.serve(tiny_model_path, host="0.0.0.0", no_auth=True)
    assert created["api_key"] is None
