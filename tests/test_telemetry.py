"""Haystack's usage telemetry is off in the tests and in the `rerank` command unless the user turns it on."""

import os
import subprocess
import sys

# Runs the CLI in a fresh process (printing its help), then reports the setting and whether Haystack built its
# telemetry client when it was imported.
PROBE = (
    "import os\n"
    "from crossencoder_haystack.cli import main\n"
    "main([])\n"
    "import haystack.telemetry._telemetry as telemetry\n"
    "print(os.environ['HAYSTACK_TELEMETRY_ENABLED'], telemetry.telemetry is None)\n"
)


def _run_cli_probe(tmp_path, **environment: str) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "HAYSTACK_TELEMETRY_ENABLED"}
    # Telemetry, when on, keeps a user id in ~/.haystack/config.yaml: keep it out of the real home directory.
    env.update(HOME=str(tmp_path), **environment)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()


def test_the_test_session_runs_without_telemetry():
    import haystack.telemetry._telemetry as telemetry

    setting = os.environ["HAYSTACK_TELEMETRY_ENABLED"]  # set by conftest.py unless the developer set it
    assert (telemetry.telemetry is None) == (setting.lower() not in ("true", "1"))


def test_the_cli_turns_telemetry_off_by_default(tmp_path):
    assert _run_cli_probe(tmp_path) == ["False", "True"]
    assert not (tmp_path / ".haystack").exists()


def test_the_cli_keeps_a_users_explicit_choice(tmp_path):
    assert _run_cli_probe(tmp_path, HAYSTACK_TELEMETRY_ENABLED="True") == ["True", "False"]
