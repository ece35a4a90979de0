"""A person's view: headless Chromium shops in ``serve env --html`` (search, open a product, pick, buy).

Chromium is driven through chromedriver's W3C WebDriver HTTP API on 127.0.0.1 with plain httpx.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, running
from turngym.envs.server import create_env_app
from turngym.envs.webshop.env import WebShopEnv
from turngym.envs.webshop.pages import PageKind

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element key
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Browser:
    """The few WebDriver calls the test needs."""

    def __init__(self, driver_url: str, profile: Path) -> None:
        self.http = httpx.Client(base_url=driver_url, timeout=60.0)
        options = {"binary": shutil.which("chromium"), "args": [*CHROME_ARGS, f"--user-data-dir={profile}"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.http.request(method, path, json=body)
        assert response.status_code == 200, response.text[:500]
        return response.json()["value"]

    def go(self, url: str) -> None:
        self._call("POST", f"/session/{self.session}/url", {"url": url})

    def find(self, css: str) -> list[str]:
        found = self._call(
            "POST", f"/session/{self.session}/elements", {"using": "css selector", "value": css}
        )
        return [e[ELEMENT] for e in found]

    def type(self, element: str, text: str) -> None:
        self._call("POST", f"/session/{self.session}/element/{element}/clear", {})
        self._call("POST", f"/session/{self.session}/element/{element}/value", {"text": text})

    def click(self, element: str) -> None:
        self._call("POST", f"/session/{self.session}/element/{element}/click", {})

    def text(self, element: str) -> str:
        return self._call("GET", f"/session/{self.session}/element/{element}/text")

    def wait_for(self, css: str, timeout_s: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while not (found := self.find(css)):
            assert time.monotonic() < deadline, f"no element matches {css!r}"
            time.sleep(0.1)
        return found

    def close(self) -> None:
        self.http.delete(f"/session/{self.session}")
        self.http.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    port = free_port()
    driver = subprocess.Popen(
        [shutil.which("chromedriver") or "chromedriver", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/status", timeout=2).json()["value"]["ready"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        b = Browser(url, tmp_path / "profile")
        try:
            yield b
        finally:
            b.close()
    finally:
        driver.terminate()
        driver.wait(timeout=10)


def test_search_open_choose_and_buy_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    envs: list[WebShopEnv] = []

    def factory() -> WebShopEnv:
        envs.append(WebShopEnv(num_products=200, split="all", cache_dir=str(tmp_path / "bm25")))
        return envs[-1]

    app = create_env_app("turngym/WebShop-v0", factory, html=True)
    with running(app) as base:
        browser.go(f"{base}/ui/")
        box = browser.wait_for("#search-box")[0]
        env = envs[-1]
        assert env.shop is not None and env.shop.state.page is PageKind.SEARCH
        wanted = env.shop.goal.asin
        title = env.catalog.by_asin[wanted].title
        browser.type(box, title)  # typed without brackets: the form wraps it in search[...]
        browser.click(browser.find("#search-button")[0])

        links = browser.wait_for(".page-results button.link")
        assert env.shop.state.page is PageKind.RESULTS and env.shop.state.keywords == title.lower()
        texts = [browser.text(e) for e in links]
        assert wanted in texts
        browser.click(links[texts.index(wanted)])

        options = browser.wait_for(".page-item button.option") if env.catalog.by_asin[wanted].options else []
        assert env.shop.state.page is PageKind.ITEM and env.shop.state.asin == wanted
        if options:
            chosen = browser.text(options[0])
            browser.click(options[0])
            browser.wait_for(".page-item button.option.selected")
            assert chosen in env.shop.state.options.values()
        buy = [e for e in browser.find(".page-item button.button") if browser.text(e) == "Buy Now"]
        browser.click(buy[0])
        browser.wait_for(".page-done")
        assert env.shop.state.page is PageKind.DONE and env.shop.purchase is not None
        assert "episode over" in browser.text(browser.find("#status")[0])
