"""``turngym/WebShop-v0``: shop for a product that fits an instruction (WebShop, Yao et al. 2022).

Observation: WebShop's simple text mode, the page's visible texts joined with ``" [SEP] "``
(:mod:`turngym.envs.webshop.pages`). Actions: ``search[<query>]`` and ``click[<button>]`` where
the button is one of the page's clickables (case-insensitive; ``info['admissible_actions']`` lists
the clicks, ``None`` on the search page where any query goes). Anything else is an invalid action:
the page stays, the observation says why, ``info['invalid_action']`` is true.

``Buy Now`` ends the episode with the WebShop score in [0, 1] as the reward
(:mod:`turngym.envs.webshop.reward`); ``won`` means a score of exactly 1.0 and
``info['reward_breakdown']`` holds every term (also in ``info['metrics']`` as
``reward/<term>`` floats, which travel through the env server). 15 actions (``max_turns``)
truncate the episode, as in ReAct and verl-agent.

Data: ``data_dir=None`` uses the generated catalog (:mod:`turngym.envs.webshop.generate`);
otherwise the real files in ``data_dir`` (``small=True`` for the ``_1000`` files). ``goals`` picks
human or synthetic goals and ``split`` one of test ``[0,500)``, eval ``[500,1500)``, train
``[1500,N)`` or all of the shuffled goals. ``nouns='spacy'`` tags title nouns with spaCy's
``en_core_web_sm`` as the original reward does (default: a heuristic, see the reward module).
Catalogs are loaded once per process and the search index once per catalog (cached on disk in
``cache_dir``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.webshop import expert
from turngym.envs.webshop.catalog import Catalog, Goal, build_catalog, split_goals
from turngym.envs.webshop.files import load_catalog
from turngym.envs.webshop.generate import generate_records
from turngym.envs.webshop.html import render_page
from turngym.envs.webshop.pages import PageKind, Shop
from turngym.envs.webshop.reward import heuristic_nouns, spacy_nouns
from turngym.envs.webshop.search import ProductSearch
from turngym.errors import ConfigError

ACTION_RE = re.compile(r"^\s*(search|click)\[(.+)\]\s*$", re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=8)
def cached_catalog(data_dir: str | None, goals: str, small: bool, num_products: int | None) -> Catalog:
    """The catalog for these settings, built once per process."""
    if data_dir is None:
        items, attributes, human = generate_records(num_products or 3000)
        return build_catalog(items, attributes, human, goal_kind=goals)
    return load_catalog(data_dir, goal_kind=goals, small=small, num_products=num_products)


@lru_cache(maxsize=8)
def cached_search(catalog: Catalog, cache_dir: str | None) -> ProductSearch:
    """The search engine of ``catalog``, built once per process (and cached on disk)."""
    return ProductSearch(catalog.products, Path(cache_dir) if cache_dir else None)


class WebShopEnv(TextEnv):
    """Find, configure and buy the product an instruction asks for."""

    description = "Shop a product catalog with search[...] and click[...] for an instruction (WebShop)"
    requires = ("rapidfuzz", "Stemmer")

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        goals: str = "human",
        split: str = "train",
        small: bool = False,
        num_products: int | None = None,
        cache_dir: str | None = None,
        nouns: str = "heuristic",
        max_turns: int = 15,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_turns=max_turns, **kwargs)
        self.catalog = cached_catalog(data_dir, goals, small, num_products)
        self.goals: list[Goal] = split_goals(self.catalog.goals, split)
        if not self.goals:
            raise ConfigError(
                f"split {split!r} of this catalog holds no goals ({len(self.catalog.goals)} in all); "
                "choose split='all' or a larger catalog"
            )
        if nouns not in ("heuristic", "spacy"):
            raise ConfigError(f"nouns must be 'heuristic' or 'spacy', got {nouns!r}")
        self._nouns = heuristic_nouns if nouns == "heuristic" else spacy_nouns()
        self.engine = cached_search(self.catalog, cache_dir)
        self.shop: Shop | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.goals)

    @property
    def system_prompt(self) -> str:
        return (
            "You are shopping on a web store for the product the instruction describes. Each turn, reply "
            "with exactly one action: search[<query>] on the search page, or click[<button>] with one of "
            "the clickable texts of the current page (a product id, an option value, 'back to search', "
            "'next >', '< prev', 'description', 'features', 'reviews' or 'buy now'). Pick the options the "
            "instruction asks for before you click 'buy now'."
        )

    def _active(self) -> Shop:
        assert self.shop is not None, "reset() creates the shop"
        return self.shop

    def _reset(self, task_id: Any) -> str:
        if not isinstance(task_id, int | np.integer) or not 0 <= int(task_id) < len(self.goals):
            raise ConfigError(f"task_id must be an int in [0, {len(self.goals)}), got {task_id!r}")
        self.shop = Shop(self.catalog, self.engine, self.goals[int(task_id)], self._nouns)
        return self.shop.text()

    def _step(self, action: str) -> StepOutcome:
        shop = self._active()
        match = ACTION_RE.match(action)
        if match is None:
            return self._invalid(f"expected search[<query>] or click[<button>], got {action.strip()[:80]!r}")
        verb, arg = match.group(1).lower(), match.group(2)
        result = shop.search(arg) if verb == "search" else shop.click(arg)
        if result.error:
            return self._invalid(result.error)
        if result.purchase is not None:
            score = result.purchase.score
            return StepOutcome(
                shop.text(),
                reward=score,
                terminated=True,
                won=score == 1.0,
                metrics={
                    f"reward/{k}": float(v) for k, v in result.purchase.as_dict().items() if v is not None
                },
            )
        return StepOutcome(shop.text())

    def _invalid(self, why: str) -> StepOutcome:
        return StepOutcome(f"Invalid action: {why}\n\n{self._active().text()}", invalid_action=True)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        purchase = self._active().purchase
        info["reward_breakdown"] = purchase.as_dict() if purchase is not None and terminated else None
        return obs, reward, terminated, truncated, info

    def anchor(self) -> Hashable:
        """The page text plus the chosen options (which the text alone does not show)."""
        shop = self._active()
        return (shop.text(), tuple(sorted(shop.state.options.items())))

    def admissible_actions(self) -> list[str] | None:
        shop = self._active()
        if shop.state.page in (PageKind.SEARCH, PageKind.DONE):
            return None
        return [f"click[{c}]" for c in shop.clickables()]

    def expert_action(self) -> str:
        return expert.expert_action(self._active())

    def random_action(self, rng: np.random.Generator) -> str:
        return expert.random_action(self._active(), rng)

    def render_html(self) -> str:
        """The current page as an HTML fragment whose forms POST ``action`` to ``act``."""
        return render_page(self._active())
