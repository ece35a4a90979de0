"""The HTML view: one form per action, posting ``action`` to ``act``, with every product text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.unit.webshop.test_reward import SHOES, goal, product
from turngym.envs.webshop.catalog import Catalog
from turngym.envs.webshop.html import render_page
from turngym.envs.webshop.pages import Shop
from turngym.envs.webshop.search import ProductSearch

HOSTILE = product(
    asin="B0000000X1", title='<script>alert("x")</script> Shoes & "Boots"', options={"size": ("<b>9</b>",)}
)


class Forms(HTMLParser):
    """Collects (form action, method, submit name, submit value) and every tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self.buttons: list[tuple[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "form":
            self.forms.append(a)
        if tag in ("button", "input") and a.get("name") == "action":
            self.buttons.append((tag, a.get("value", "")))


def shop_on(tmp_path, page_actions: list[tuple[str, str]]) -> Shop:
    catalog = Catalog(
        products=(SHOES, HOSTILE), prices={SHOES.asin: 25.99, HOSTILE.asin: 5.0}, goals=(goal(),)
    )
    shop = Shop(catalog, ProductSearch(catalog.products, tmp_path), goal())
    for verb, arg in page_actions:
        assert not (shop.search(arg) if verb == "search" else shop.click(arg)).error
    return shop


def parse(html: str) -> Forms:
    forms = Forms()
    forms.feed(html)
    return forms


def test_search_page_has_one_text_input_named_action(tmp_path) -> None:
    html = render_page(shop_on(tmp_path, []))
    forms = parse(html)
    assert [(f["method"], f["action"]) for f in forms.forms] == [("post", "act")]
    assert forms.buttons == [("input", "")]
    assert "search[" in forms.forms[0]["onsubmit"]


def test_results_and_item_pages_offer_each_click_as_a_form(tmp_path) -> None:
    shop = shop_on(tmp_path, [("search", "shoes")])
    forms = parse(render_page(shop))
    assert {f["action"] for f in forms.forms} == {"act"}
    values = [v for _, v in forms.buttons]
    assert sorted(values) == sorted(f"click[{c}]" for c in shop.clickables())
    assert "click[b0000000x1]" in values and "click[next >]" in values
    shop.click("b0000000x1")
    values = [v for _, v in parse(render_page(shop)).buttons]
    assert sorted(values) == sorted(f"click[{c}]" for c in shop.clickables())
    assert "click[<b>9</b>]" in values and values[-1] == "click[buy now]"


def test_product_text_is_escaped(tmp_path) -> None:
    shop = shop_on(tmp_path, [("search", "shoes"), ("click", "b0000000x1")])
    html = render_page(shop)
    assert "<script>" not in html and "<b>9</b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Shoes &amp; &quot;Boots&quot;" in html
    assert set(parse(html).tags) <= {"div", "form", "button", "p"}
    assert re.search(r'class="option">&lt;b&gt;9&lt;/b&gt;</button>', html)
