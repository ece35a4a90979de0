"""Scripted shoppers: the expert (knows the goal's product) and the random baseline.

Expert: search with the instruction (its price clause removed); if the goal product is not
among the results, go back and search with the product's title. On the results it pages forward
or back to the goal product and opens it; on the item page it picks, for every goal option, the
product value that matches it best (fuzzy score above the reward's threshold) and buys. From a
sub-page or a wrong product it goes back.

Random: on the search page it searches with the instruction (as WebShop's rule baseline does);
elsewhere it clicks a uniformly drawn clickable.
"""

from __future__ import annotations

import numpy as np

from turngym.envs.webshop.pages import BACK, BUY, NEXT, PREV, PRODUCT_WINDOW, PageKind, Shop
from turngym.envs.webshop.reward import FUZZ_THRESHOLD, fuzz_score, normalize_color


def instruction_query(instruction: str) -> str:
    """The instruction without its ``", and price lower than ..."`` clause."""
    return instruction.split(", and price lower than")[0]


def _wanted_options(shop: Shop) -> list[tuple[str, str]]:
    """(option name, value) to select on the goal product's page, one per goal option it can meet."""
    product = shop.catalog.by_asin[shop.goal.asin]
    pairs = [(name, v) for name, values in product.options.items() for v in values]
    wanted = []
    for goal_option in shop.goal.goal_options:
        if isinstance(goal_option, tuple):  # a synthetic goal names the option exactly
            wanted.append(goal_option)
            continue
        target = normalize_color(goal_option)
        scored = [(fuzz_score(normalize_color(v), target), v == goal_option, name, v) for name, v in pairs]
        best = max(scored, key=lambda t: (t[0], t[1]), default=None)  # the first best, exact first
        if best is not None and best[0] > FUZZ_THRESHOLD:
            wanted.append((best[2], best[3]))
    return wanted


def expert_action(shop: Shop) -> str:
    """The expert's next action in ``shop``."""
    s, goal = shop.state, shop.goal
    if s.page is PageKind.SEARCH:
        query = instruction_query(goal.instruction_text) if s.searches == 0 else goal.name
        return f"search[{query}]"
    if s.page is PageKind.RESULTS:
        if goal.asin not in s.results:
            return f"click[{BACK.lower()}]"
        if goal.asin in shop.page_asins():
            return f"click[{goal.asin.lower()}]"
        ahead = s.results.index(goal.asin) >= s.page_no * PRODUCT_WINDOW
        return f"click[{(NEXT if ahead else PREV).lower()}]"
    if s.page is PageKind.SUB:
        return f"click[{PREV.lower()}]"
    if s.asin != goal.asin:
        return f"click[{BACK.lower()}]"
    for name, value in _wanted_options(shop):
        if s.options.get(name) != value:
            return f"click[{value}]"
    return f"click[{BUY.lower()}]"


def random_action(shop: Shop, rng: np.random.Generator) -> str:
    """A random shopper's next action."""
    if shop.state.page is PageKind.SEARCH:
        return f"search[{instruction_query(shop.goal.instruction_text)}]"
    clickables = list(shop.clickables())
    return f"click[{clickables[int(rng.integers(len(clickables)))]}]"
