"""End to end: ``turngym view``'s app on 127.0.0.1 in headless Chromium. The list is clicked, a
trajectory opens with its advantages and step groups, a step-group link is followed, a parse
failure is highlighted, the filters and the search narrow the list, the charts tab shows the run's
charts; a screenshot is kept.

The screenshot goes to ``$TURNGYM_TEST_ARTIFACTS/viewer.png`` when that variable names a folder,
else to the test's temporary directory; the path is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import HAVE_CHROMIUM, SKIP_REASON, Browser, browser_session
from tests.servers import free_port, running
from tests.viewer_data import build_run_dir
from turngym.viewer import create_viewer_app

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_CHROMIUM, reason=SKIP_REASON)]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with browser_session(tmp_path / "profile", free_port()) as b:
        yield b


def wait_until(browser: Browser, css: str, text: str, timeout_s: float = 20.0) -> str:
    """The text of the first element matching ``css`` once it contains ``text``."""
    deadline = time.monotonic() + timeout_s
    read = f"const e = document.querySelector({json.dumps(css)}); return e ? e.innerText : '';"
    while True:
        current = browser.script(read)  # one call: the page may re-render between a find and a read
        if text in current:
            return current
        assert time.monotonic() < deadline, f"{css!r} never showed {text!r} (last: {current!r})"
        time.sleep(0.1)


def test_click_into_a_trajectory_and_see_its_credit(browser: Browser, tmp_path: Path) -> None:
    run = build_run_dir(tmp_path)
    with running(create_viewer_app(run)) as base:
        browser.go(f"{base}/")
        items = browser.wait_for(".traj-item")
        assert len(items) == 8
        heads = [browser.text(e) for e in browser.find(".group-head")]
        assert heads[0].startswith("iteration 1 · group 3:11 · task 3 · 2/3 won")

        second = next(e for e in items if browser.attribute(e, "data-id") == "1")
        browser.click(second)  # a real click, through WebDriver's input events
        wait_until(browser, "#detail h2", "Trajectory #1")
        assert browser.script("return location.hash") == "#/t/1"
        advantages = [browser.text(e) for e in browser.find("#detail .advantage")]
        assert advantages == ["advantage 0.2708", "advantage 0.5208", "advantage 0.3333"]  # GiGPO, γ = 0.5
        groups = [browser.text(e) for e in browser.find("#detail .step-group")]
        assert groups[0].startswith("step group #0 (same anchor state): 4 step(s):")
        assert "#1·t0 (this)" in groups[0] and "#0·t0" in groups[0] and "#2·t0" in groups[0]
        assert "#0·t1" in groups[2] and "#1·t2 (this)" in groups[2]
        assert len(browser.find("#detail .tok")) == 6  # two tokens per turn in the heat map
        shot = browser.screenshot(tmp_path / "viewer.png")

        link = next(e for e in browser.find("#detail .step-group a.member") if browser.text(e) == "#2·t0")
        browser.click(link)
        wait_until(browser, "#detail h2", "Trajectory #2")
        assert browser.find("#turn-0.focus") and browser.find(".traj-item.selected")

        browser.go(f"{base}/#/t/4")
        wait_until(browser, "#detail h2", "Trajectory #4")
        flagged = browser.find("#detail .turn.parse-failure")
        assert len(flagged) == 1 and "parse failure" in browser.text(flagged[0])

        browser.click(browser.find("#filters [name=won] option[value=true]")[0])
        browser.type(browser.find("#filters [name=q]")[0], "hall")
        browser.click(browser.find("#apply")[0])
        wait_until(browser, "#range", "1–1 of 1")  # the one won trajectory that passes the hall
        assert [browser.attribute(e, "data-id") for e in browser.find(".traj-item")] == ["3"]

        browser.click(browser.find("#tab-charts")[0])
        browser.wait_for("#charts img")
        shown = "return ['#browse', '#charts'].map(s => getComputedStyle(document.querySelector(s)).display)"
        assert browser.script(shown) == ["none", "flex"]  # the charts tab replaces the list
        assert [browser.attribute(e, "alt") for e in browser.find("#charts img")] == [
            "success",
            "reward",
            "singleton_fraction",
        ]
        loaded = browser.script(
            "return [...document.querySelectorAll('#charts img')].map(i => i.naturalWidth)"
        )
        deadline = time.monotonic() + 20
        while not all(loaded) and time.monotonic() < deadline:
            time.sleep(0.2)
            loaded = browser.script(
                "return [...document.querySelectorAll('#charts img')].map(i => i.naturalWidth)"
            )
        assert all(width > 100 for width in loaded)

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    folder = os.environ.get("TURNGYM_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shot = Path(shutil.copy(shot, Path(folder) / "viewer.png"))
    print(f"viewer screenshot: {shot}")
