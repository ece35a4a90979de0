"""WebShop: an offline web store with WebShop's pages, search, goals and exact reward.

See :mod:`turngym.envs.webshop.env` for the environment and ``docs/webshop.md`` for a tour.
"""

from turngym.envs.webshop.catalog import Catalog, Goal, Product, build_catalog, split_goals
from turngym.envs.webshop.env import WebShopEnv
from turngym.envs.webshop.files import load_catalog
from turngym.envs.webshop.generate import generate_records, write_records
from turngym.envs.webshop.reward import RewardBreakdown, purchase_reward
from turngym.envs.webshop.search import ProductSearch

__all__ = [
    "Catalog",
    "Goal",
    "Product",
    "ProductSearch",
    "RewardBreakdown",
    "WebShopEnv",
    "build_catalog",
    "generate_records",
    "load_catalog",
    "purchase_reward",
    "split_goals",
    "write_records",
]
