"""WebShop's page state machine and page contents (research note §1.4-1.5).

Pages: the search page, the results page (10 products per page out of the top 50, ``Next >``
always shown, ``< Prev`` from page 2), the item page (options as groups of values, title, price,
rating and the ``Description`` / ``Features`` / ``Reviews`` / ``Buy Now`` buttons), the three
sub-pages (each with ``Back to Search`` and ``< Prev``), and the done page after ``Buy Now``.

A page is a list of :class:`Node` (text, button, product link, option value, search box). The
text observation is every node's text joined with ``" [SEP] "``, which is what WebShop's
``observation_mode='text'`` extracts from its HTML; :mod:`turngym.envs.webshop.html` renders the
same nodes as a browser page. The clickables are, in the original's order, the lowercased texts of
the buttons, then of the product links, then the option values (an option value shadows a button
of the same text). Clicks resolve in the original order: ``buy now``, ``back to search``,
``next >`` / ``< prev``, a sub-page name, else a product (results page) or an option value (item
page). As in the original session, every visit to the search or results page (a search, which is
allowed on any page, ``Back to Search``, paging, ``< Prev`` from a product) forgets the chosen
product and options; ``< Prev`` from a sub-page returns to the product with its options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from turngym.envs.webshop.catalog import Catalog, Goal
from turngym.envs.webshop.reward import RewardBreakdown, heuristic_nouns, purchase_reward
from turngym.envs.webshop.search import ProductSearch

PRODUCT_WINDOW = 10
SEP = " [SEP] "
BACK, NEXT, PREV, BUY = "Back to Search", "Next >", "< Prev", "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


class PageKind(str, Enum):
    """Which of WebShop's pages is shown."""

    SEARCH = "search"
    RESULTS = "results"
    ITEM = "item"
    SUB = "sub"
    DONE = "done"


@dataclass(frozen=True)
class Node:
    """One visible element of a page."""

    kind: str
    """``text``, ``button``, ``link`` (a product), ``option`` (a value of group ``group``) or ``search``."""
    text: str
    group: str = ""
    selected: bool = False


@dataclass
class ShopState:
    """Where the shopper is and what they chose."""

    page: PageKind = PageKind.SEARCH
    keywords: str = ""
    """The last search, lowercased."""
    page_no: int = 1
    """The results page shown (1-based)."""
    results: tuple[str, ...] = ()
    """Asins of the last search, best first (at most 50)."""
    asin: str | None = None
    """The product open on the item page or a sub-page."""
    sub_page: str = ""
    """``Description``, ``Features`` or ``Reviews`` on a sub-page."""
    options: dict[str, str] = field(default_factory=dict)
    """Option name -> chosen value for the open product."""
    searches: int = 0
    """Searches made in this episode."""


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one parsed action: an error message, or a move (and a purchase on buy)."""

    error: str = ""
    purchase: RewardBreakdown | None = None


class Shop:
    """One shopper's session on a catalog, for one goal."""

    def __init__(
        self,
        catalog: Catalog,
        search: ProductSearch,
        goal: Goal,
        nouns: Callable[[str], list[str]] = heuristic_nouns,
    ) -> None:
        self.catalog, self.engine, self.goal, self._nouns = catalog, search, goal, nouns
        self.state = ShopState()
        self.purchase: RewardBreakdown | None = None

    # ---- pages --------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """The current page's elements, top to bottom."""
        s = self.state
        header = [Node("text", "Instruction:"), Node("text", self.goal.instruction_text)]
        if s.page is PageKind.SEARCH:
            return [Node("text", "WebShop"), *header, Node("search", "Search")]
        if s.page is PageKind.DONE:
            return self._done_nodes()
        nodes = [*header, Node("button", BACK)]
        if s.page is PageKind.RESULTS:
            nodes.append(Node("text", f"Page {s.page_no} (Total results: {len(s.results)})"))
            if s.page_no > 1:
                nodes.append(Node("button", PREV))
            nodes.append(Node("button", NEXT))
            for asin in self.page_asins():
                product = self.catalog.by_asin[asin]
                nodes += [Node("link", asin), Node("text", product.title), Node("text", product.price_tag)]
            return [n for n in nodes if n.text]
        assert s.asin is not None, "item and sub pages always have a product"
        product = self.catalog.by_asin[s.asin]
        nodes.append(Node("button", PREV))
        if s.page is PageKind.SUB:
            if s.sub_page == "Description":
                nodes.append(Node("text", product.description.strip()))
            elif s.sub_page == "Features":
                nodes += [Node("text", b.strip()) for b in product.bullet_points]
            return [n for n in nodes if n.text]
        for name, values in product.options.items():
            nodes.append(Node("text", name))
            nodes += [Node("option", v, name, s.options.get(name) == v) for v in values]
        nodes += [
            Node("text", product.title),
            Node("text", f"Price: {product.price_tag}"),
            Node("text", f"Rating: {product.rating}"),
            *(Node("button", sub) for sub in SUB_PAGES),
            Node("button", BUY),
        ]
        return [n for n in nodes if n.text]

    def _done_nodes(self) -> list[Node]:
        assert self.purchase is not None and self.state.asin is not None
        product = self.catalog.by_asin[self.state.asin]
        chosen = ", ".join(f"{k}: {v}" for k, v in self.state.options.items()) or "none"
        return [
            Node("text", "Thank you for shopping with us!"),
            Node("text", "Purchased"),
            Node("text", product.asin),
            Node("text", product.title),
            Node("text", f"Options: {chosen}"),
            Node("text", "Your score (min 0.0, max 1.0)"),
            Node("text", f"{self.purchase.score:.4f}"),
        ]

    def text(self) -> str:
        """The page as WebShop's simple text observation."""
        return SEP.join(n.text for n in self.nodes())

    def page_asins(self) -> tuple[str, ...]:
        start = (self.state.page_no - 1) * PRODUCT_WINDOW
        return self.state.results[start : start + PRODUCT_WINDOW]

    def clickables(self) -> dict[str, Node]:
        """Clickable text -> its node: lowercased buttons, then product links, then option values."""
        nodes = self.nodes()
        table = {n.text.lower(): n for kind in ("button", "link") for n in nodes if n.kind == kind}
        table.update({n.text: n for n in nodes if n.kind == "option"})
        return table

    # ---- actions ------------------------------------------------------------------------------
    def search(self, query: str) -> ActionResult:
        keywords = " ".join(query.lower().split())
        if not keywords:
            return ActionResult(error="the search query is empty; write search[<words to look for>]")
        s = self.state
        s.page, s.keywords, s.page_no, s.asin, s.options = PageKind.RESULTS, keywords, 1, None, {}
        s.searches += 1
        s.results = tuple(self.engine.search(keywords))
        return ActionResult()

    def click(self, target: str) -> ActionResult:
        s = self.state
        target = target.strip().lower()
        if s.page is PageKind.SEARCH or target == "search":
            return ActionResult(error="on the search page the only action is search[<query>]")
        clickables = self.clickables()
        if target not in clickables:
            names = ", ".join(clickables) or "none"
            return ActionResult(error=f"{target!r} is not clickable on this page; clickables: {names}")
        node = clickables[target]
        if target == BUY.lower():
            return self._buy()
        if target == BACK.lower():
            s.page, s.asin, s.options = PageKind.SEARCH, None, {}
        elif target in (NEXT.lower(), PREV.lower()) and s.page is PageKind.RESULTS:
            s.page_no += 1 if target == NEXT.lower() else -1
            s.asin, s.options = None, {}
        elif target == PREV.lower() and s.page is PageKind.SUB:
            s.page = PageKind.ITEM
        elif target == PREV.lower():
            s.page, s.asin, s.options = PageKind.RESULTS, None, {}
        elif node.kind == "button" and node.text in SUB_PAGES:
            s.page, s.sub_page = PageKind.SUB, node.text
        elif node.kind == "link":
            s.page, s.asin = PageKind.ITEM, node.text
        else:
            s.options[node.group] = node.text
        return ActionResult()

    def _buy(self) -> ActionResult:
        s = self.state
        assert s.asin is not None, "Buy Now is shown only on an item page"
        product = self.catalog.by_asin[s.asin]
        self.purchase = purchase_reward(
            product, self.goal, self.catalog.prices[s.asin], dict(s.options), self._nouns
        )
        s.page = PageKind.DONE
        return ActionResult(purchase=self.purchase)
