"""The labelling page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium).

`rerank label` runs as a real process on a free port; the test judges candidates with the keyboard, undoes one,
reloads, kills the server, starts it again and checks that the page shows every confirmed judgement. A screenshot is
saved next to the test's files and, if `RERANK_TEST_ARTIFACTS` names a directory, there too.

Skipped, with the reason, only when no Chromium and ChromeDriver are installed (`.ci/run` installs them).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.labelling_fixtures import label_process, write_collection

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no Chromium/ChromeDriver on PATH: install them with `apt-get install chromium chromium-driver` "
    "(as .ci/run does) to test the labelling page in a browser",
)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    # The system driver, named explicitly: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def _grades(driver) -> list[str | None]:
    """Each shown candidate's grade (data-grade), in page order; None for an unjudged one."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.candidate')].map(item => item.dataset.grade ?? null)"
    )


def _settled(driver) -> bool:
    """Every candidate shown and none still saving."""
    return driver.execute_script(
        "const items = document.querySelectorAll('.candidate');"
        "return items.length > 0 && ![...items].some(item => item.dataset.state === 'saving')"
    )


def _press(driver, keys: str) -> None:
    from selenium.webdriver.common.by import By

    body = driver.find_element(By.TAG_NAME, "body")
    for key in keys:
        body.send_keys(key)
        _wait(driver, _settled)


def _position(driver) -> str:
    return driver.execute_script("return document.getElementById('query-position').textContent")


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.querySelector('.candidate.focused') !== null"))
    _wait(driver, _settled)


def test_judging_with_the_keyboard_survives_a_reload_and_a_killed_server(browser, tmp_path):
    collection = write_collection(tmp_path / "collection")
    labels = tmp_path / "labels.jsonl"
    arguments = ["--queries", str(collection), "--output", str(labels), "--retriever", "bm25", "--top-n", "4"]

    with label_process(arguments) as (url, _):
        browser.get(url.split("?")[0])  # without the token: no data, and a page that says what to open
        assert "needs its access token" in browser.execute_script("return document.body.textContent")
        _open(browser, url)
        assert _position(browser).startswith("Query 1 of 3")
        origin = url.split("/?")[0]
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(name.startswith(origin + "/") for name in resources)  # no CDN, nothing external

        _press(browser, "3")  # candidate 1: highly relevant, focus moves on
        _press(browser, "2")  # candidate 2
        _press(browser, "jk")  # down to candidate 4, back up to 3
        _press(browser, "0")  # candidate 3
        _wait(browser, lambda d: _grades(d) == ["3", "2", "0", None])
        _press(browser, "u")  # undo the last: candidate 3 unjudged again, and focused
        _wait(browser, lambda d: _grades(d) == ["3", "2", None, None])
        _press(browser, "k")
        _press(browser, "1")  # candidate 2 changed from 2 to 1
        _wait(browser, lambda d: _grades(d) == ["3", "1", None, None])
        states = browser.execute_script("return [...document.querySelectorAll('.candidate')].map(i => i.dataset.state)")
        assert states[:2] == ["saved", "saved"]

        browser.refresh()  # a reload shows what the server has: nothing was only in the page
        _wait(browser, lambda d: _grades(d) == ["3", "1", None, None])
        assert _position(browser).startswith("Query 1 of 3")
        guide = browser.execute_script("return document.getElementById('guide-label').textContent")
        assert guide.startswith("2 judged pairs") and "1,000–5,000" in guide

        _press(browser, "n")  # next query
        _wait(browser, lambda d: _position(d).startswith("Query 2 of 3") and _settled(d))
        _press(browser, "1")
        _wait(browser, lambda d: _grades(d)[0] == "1")
        browser.save_screenshot(str(tmp_path / "label_page.png"))
        _press(browser, "p")
        _wait(browser, lambda d: _position(d).startswith("Query 1 of 3") and _grades(d) == ["3", "1", None, None])

    # The server was killed (SIGKILL). Started again, it resumes where the expert stopped: query 2.
    with label_process(arguments) as (url, _):
        _open(browser, url)
        assert _position(browser).startswith("Query 2 of 3") and _grades(browser)[0] == "1"
        _press(browser, "p")
        _wait(browser, lambda d: _position(d).startswith("Query 1 of 3") and _grades(d) == ["3", "1", None, None])

    judgements = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()]
    grades = [line["grade"] for line in judgements if line["event"] == "judgement"]
    assert grades == [3, 2, 0, None, 1, 1]  # every write, the undo included

    screenshot = tmp_path / "label_page.png"
    assert screenshot.stat().st_size > 10_000
    artifacts = os.environ.get("RERANK_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)
