"""A person's view: headless Chromium shops in ``serve env --html`` (search, open a product, pick, buy).

Chromium is driven through chromedriver's W3C WebDriver HTTP API on 127.0.0.1 (:mod:`tests.browser`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import HAVE_CHROMIUM, SKIP_REASON, Browser, browser_session
from tests.servers import free_port, running
from turngym.envs.server import create_env_app
from turngym.envs.webshop.env import WebShopEnv
from turngym.envs.webshop.pages import PageKind

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_CHROMIUM, reason=SKIP_REASON)]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with browser_session(tmp_path / "profile", free_port()) as b:
        yield b


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
