"""Every test that loads the real all-MiniLM-L6-v2 weights carries `@pytest.mark.integration`, and stays so.

A pytest plugin: it wraps `transformers.PreTrainedModel.from_pretrained` for the session and notes each load from
the bundled model's directory, with the test (or the fixture) that caused it. A test that loaded those weights, in
its body or through a fixture that did, fails unless it is marked `integration`. So `pytest -m "not integration"`
is a fast run without real weights that cannot silently grow slow again. Tokenizer loads are not weight loads.
"""

from pathlib import Path
from typing import Any

import pytest

_weight_fixtures: set[str] = set()  # fixtures whose set-up loaded the real weights
_current: dict[str, Any] = {"fixture": None, "loaded": False}


def _bundled_directory() -> Path:
    from crossencoder_haystack.bundled_model import bundled_minilm_path

    return Path(bundled_minilm_path()).resolve()


def _is_bundled(path: Any, bundled: Path) -> bool:
    try:
        return Path(str(path)).resolve().is_relative_to(bundled)
    except (OSError, ValueError):
        return False


def pytest_configure(config: pytest.Config) -> None:
    from transformers import PreTrainedModel

    bundled = _bundled_directory()
    original = PreTrainedModel.from_pretrained.__func__

    def from_pretrained(cls: type, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_bundled(pretrained_model_name_or_path, bundled):
            if _current["fixture"] is not None:
                _weight_fixtures.add(_current["fixture"])
            else:
                _current["loaded"] = True
        return original(cls, pretrained_model_name_or_path, *args, **kwargs)

    PreTrainedModel.from_pretrained = classmethod(from_pretrained)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    outer = _current["fixture"]
    _current["fixture"] = outer or fixturedef.argname
    try:
        yield
    finally:
        _current["fixture"] = outer


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _current["loaded"] = False
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or item.get_closest_marker("integration") is not None:
        return
    fixtures = sorted(_weight_fixtures & set(getattr(item, "fixturenames", ())))
    if _current["loaded"] or fixtures:
        how = f"through the fixture(s) {', '.join(fixtures)}" if fixtures else "in its body"
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} loads the real all-MiniLM-L6-v2 weights ({how}) but is not marked "
            "`@pytest.mark.integration`: mark it, or use a tiny model (tests/conftest.py builds them)."
        )
