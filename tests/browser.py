"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP API on 127.0.0.1 (plain httpx).

Debian's ``chromium`` and ``chromium-driver`` (installed by ``.ci/setup.d/chromium.sh``); tests that
use :func:`browser_session` skip with :data:`SKIP_REASON` when either is missing.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HAVE_CHROMIUM = bool(shutil.which("chromium") and shutil.which("chromedriver"))
SKIP_REASON = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
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
    """The few WebDriver calls the browser tests need."""

    def __init__(self, driver_url: str, profile: Path, window: tuple[int, int] = (1400, 900)) -> None:
        self.http = httpx.Client(base_url=driver_url, timeout=60.0)
        args = [*CHROME_ARGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]
        options = {"binary": shutil.which("chromium"), "args": args}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
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

    def attribute(self, element: str, name: str) -> str | None:
        return self._call("GET", f"/session/{self.session}/element/{element}/attribute/{name}")

    def script(self, source: str) -> Any:
        return self._call("POST", f"/session/{self.session}/execute/sync", {"script": source, "args": []})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", f"/session/{self.session}/screenshot")))
        return path

    def wait_for(self, css: str, timeout_s: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while not (found := self.find(css)):
            assert time.monotonic() < deadline, f"no element matches {css!r}"
            time.sleep(0.1)
        return found

    def close(self) -> None:
        self.http.delete(f"/session/{self.session}")
        self.http.close()


@contextmanager
def browser_session(profile: Path, port: int) -> Iterator[Browser]:
    """chromedriver on ``port`` and one browser session with its profile in ``profile``."""
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
        browser = Browser(url, profile)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        driver.terminate()
        driver.wait(timeout=10)
