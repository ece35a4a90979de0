"""WebShop products and goals, built from records in the original file formats.

The field handling follows WebShop's ``engine.load_products`` and ``goal.get_goals``
(princeton-nlp/WebShop, summarised in the project's research note, environments §1.1-1.2):

* Products (``items_shuffle*.json``, a list of dicts): a record is skipped when its ``asin`` is
  ``'nan'`` or longer than 10 characters, and later duplicates of an asin are dropped.
  ``pricing`` such as ``"$10.99$25.99"`` is split on ``$``; every piece keeps only digits and dots
  and becomes a float; one piece gives the tag ``"$10.99"``, more give ``"$10.99 to $25.99"``
  (only the first two kept); a missing price gives ``[100.0]`` and the tag ``"$100.0"``.
  ``small_description`` becomes the bullet-point list (a bare string is wrapped in a list).
  Option names are lowercased; each option value is stripped, ``/`` becomes ``" | "`` and it is
  lowercased; an option whose value list is null is dropped. ``query`` is lowercased and stripped.
  ``Attributes`` come from ``items_ins_v2*.json`` (``['DUMMY_ATTR']`` for an asin it lacks).
* Sampled price: no pricing → 100.0, one value → it, two → uniform between them (drawn once).
* Price clause: the candidates are the first four of ``10, 20, ..., 990`` strictly above the sampled
  price; with at least two, two are sampled and the larger is ``price_upper`` and the instruction
  gets ``", and price lower than {price_upper:.2f} dollars"``; otherwise ``price_upper = 1000000``
  and no clause.
* Human goals (``items_human_ins.json``): one goal per instruction with non-empty
  ``instruction_attributes``; text = ``instruction.strip('.')`` + clause; ``goal_options`` is the
  list ``instruction_options``; weight 1.
* Synthetic goals (``items_ins_v2``): one goal per element of the cartesian product of the
  product's options (names sorted); text = instruction + ``" with name: value, and ..."`` + clause;
  ``goal_options`` is the (name, value) pairs; weight = mean over its attributes of
  ``1 / (number of goals carrying that attribute)``.
* The goal list is shuffled with ``random.seed(233)``; splits by index: test ``[0, 500)``, eval
  ``[500, 1500)``, train ``[1500, N)``.

Two deliberate differences: WebShop draws sampled prices and price bounds from the unseeded global
generator, here they come from ``random.Random(price_seed)`` so a catalog is reproducible; and a
product missing from ``items_ins_v2`` gets no synthetic goal (the original stops with a KeyError).
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from turngym.errors import CatalogError

PRICE_RANGE = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_BOUND = 1_000_000.0
GOAL_SHUFFLE_SEED = 233
SPLITS = {"test": (0, 500), "eval": (500, 1500), "train": (1500, None), "all": (0, None)}

GoalOption = str | tuple[str, str]


@dataclass(frozen=True, eq=False)
class Product:
    """One product after the original load-time field handling."""

    asin: str
    title: str
    description: str
    bullet_points: tuple[str, ...]
    price_tag: str
    """Displayed price: ``"$12.99"`` or ``"$10.99 to $25.99"``."""
    pricing: tuple[float, ...]
    options: Mapping[str, tuple[str, ...]]
    """Lowercased option name -> normalised values, in file order."""
    attributes: tuple[str, ...]
    category: str
    query: str
    product_category: str
    """Breadcrumb joined with ``' › '``."""
    rating: str = "N.A."
    instruction: str | None = None
    """Synthetic instruction (``items_ins_v2``), if any."""
    instruction_attributes: tuple[str, ...] = ()
    human_instructions: tuple[Mapping[str, Any], ...] = ()
    """Records of ``items_human_ins.json`` for this asin."""


@dataclass(frozen=True, eq=False)
class Goal:
    """One shopping task: buy something like product ``asin`` under the price bound."""

    asin: str
    category: str
    query: str
    name: str
    product_category: str
    instruction_text: str
    attributes: tuple[str, ...]
    price_upper: float
    goal_options: tuple[GoalOption, ...]
    """Strings for human goals, (name, value) pairs for synthetic ones."""
    weight: float = 1.0


def parse_pricing(pricing: str | None) -> tuple[tuple[float, ...], str]:
    """``"$10.99$25.99"`` -> ``((10.99, 25.99), "$10.99 to $25.99")``; empty -> ``((100.0,), "$100.0")``."""
    if not pricing:
        return (100.0,), "$100.0"
    try:
        values = [float(Decimal(re.sub(r"[^\d.]", "", piece))) for piece in pricing.split("$")[1:]]
    except InvalidOperation as exc:
        raise CatalogError(f"expected a price like '$12.99' or '$10.99$25.99', got {pricing!r}") from exc
    if not values:
        raise CatalogError(f"expected a price starting with '$', got {pricing!r}")
    if len(values) == 1:
        return (values[0],), f"${values[0]}"
    return (values[0], values[1]), f"${values[0]} to ${values[1]}"


def normalize_options(customization: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """Lowercase option names; strip, ``/`` -> ``' | '`` and lowercase values; drop null options."""
    options: dict[str, tuple[str, ...]] = {}
    for name, contents in (customization or {}).items():
        if contents is None:
            continue
        options[name.lower()] = tuple(c["value"].strip().replace("/", " | ").lower() for c in contents)
    return options


def _require(record: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise CatalogError(f"{where}: expected the field {key!r}, found only {sorted(record)[:12]}")
    return record[key]


def load_products(
    items: Sequence[Mapping[str, Any]],
    attributes: Mapping[str, Mapping[str, Any]],
    human: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    num_products: int | None = None,
) -> list[Product]:
    """Products from ``items_shuffle`` records, ``items_ins_v2`` and (optional) ``items_human_ins``."""
    seen: set[str] = set()
    products: list[Product] = []
    for i, item in enumerate(items[:num_products] if num_products is not None else items):
        where = f"product record {i}"
        asin = str(_require(item, "asin", where))
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        pricing, price_tag = parse_pricing(item.get("pricing"))
        bullets = _require(item, "small_description", where)
        ins = attributes.get(asin, {})
        products.append(
            Product(
                asin=asin,
                title=str(_require(item, "name", where)),
                description=str(_require(item, "full_description", where) or ""),
                bullet_points=tuple(bullets) if isinstance(bullets, list) else (str(bullets or ""),),
                price_tag=price_tag,
                pricing=pricing,
                options=normalize_options(_require(item, "customization_options", where)),
                attributes=tuple(ins.get("attributes", ["DUMMY_ATTR"])),
                category=str(_require(item, "category", where)),
                query=str(_require(item, "query", where)).lower().strip(),
                product_category=str(_require(item, "product_category", where)),
                instruction=ins.get("instruction"),
                instruction_attributes=tuple(ins.get("instruction_attributes") or ()),
                human_instructions=tuple((human or {}).get(asin, ())),
            )
        )
    return products


def sample_prices(products: Iterable[Product], rng: random.Random) -> dict[str, float]:
    """One shown price per product: the single price, or uniform between the two."""
    prices: dict[str, float] = {}
    for p in products:
        prices[p.asin] = p.pricing[0] if len(p.pricing) == 1 else rng.uniform(p.pricing[0], p.pricing[1])
    return prices


def price_clause(price: float, rng: random.Random) -> tuple[float, str]:
    """``(price_upper, text)`` by the original rule (see the module docstring)."""
    candidates = [p for p in PRICE_RANGE if p > price][:4]
    if len(candidates) < 2:
        return NO_PRICE_BOUND, ""
    upper = max(rng.sample(candidates, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def human_goals(products: Sequence[Product], prices: Mapping[str, float], rng: random.Random) -> list[Goal]:
    """One goal per human instruction that names at least one attribute."""
    goals = []
    for p in products:
        for record in p.human_instructions:
            attrs = tuple(record.get("instruction_attributes") or ())
            if not attrs:
                continue
            upper, clause = price_clause(prices[p.asin], rng)
            goals.append(
                Goal(
                    asin=p.asin,
                    category=p.category,
                    query=p.query,
                    name=p.title,
                    product_category=p.product_category,
                    instruction_text=str(record["instruction"]).strip(".") + clause,
                    attributes=attrs,
                    price_upper=upper,
                    goal_options=tuple(record.get("instruction_options") or ()),
                )
            )
    return goals


def synthetic_goals(
    products: Sequence[Product], prices: Mapping[str, float], rng: random.Random
) -> list[Goal]:
    """One goal per option combination of every product that has a synthetic instruction."""
    goals: list[Goal] = []
    for p in products:
        if p.instruction is None:
            continue
        if not p.instruction_attributes:
            raise CatalogError(f"product {p.asin}: a synthetic instruction needs instruction_attributes")
        upper, clause = price_clause(prices[p.asin], rng)
        names = sorted(p.options)
        for combo in itertools.product(*(p.options[n] for n in names)):
            pairs = tuple(zip(names, combo, strict=True))
            option_text = ", and ".join(f"{n}: {v}" for n, v in pairs)
            goals.append(
                Goal(
                    asin=p.asin,
                    category=p.category,
                    query=p.query,
                    name=p.title,
                    product_category=p.product_category,
                    instruction_text=p.instruction + (f" with {option_text}" if option_text else "") + clause,
                    attributes=p.instruction_attributes,
                    price_upper=upper,
                    goal_options=pairs,
                )
            )
    counts = Counter(a for g in goals for a in g.attributes)
    return [replace(g, weight=sum(1.0 / counts[a] for a in g.attributes) / len(g.attributes)) for g in goals]


def split_goals(goals: Sequence[Goal], split: str) -> list[Goal]:
    """The goals of ``split`` after the seeded shuffle (test, eval, train or all)."""
    if split not in SPLITS:
        raise CatalogError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    start, stop = SPLITS[split]
    return list(goals[start:stop])


@dataclass(frozen=True, eq=False)
class Catalog:
    """Products, their sampled prices and the shuffled goals of a WebShop data set."""

    products: tuple[Product, ...]
    prices: Mapping[str, float]
    goals: tuple[Goal, ...]
    """All goals after the seeded shuffle (use :func:`split_goals` for a split)."""
    by_asin: Mapping[str, Product] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_asin", {p.asin: p for p in self.products})


def build_catalog(
    items: Sequence[Mapping[str, Any]],
    attributes: Mapping[str, Mapping[str, Any]],
    human: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    *,
    goal_kind: str = "human",
    num_products: int | None = None,
    price_seed: int = 0,
) -> Catalog:
    """Load products, sample prices, build goals of ``goal_kind`` and shuffle them (seed 233)."""
    if goal_kind not in ("human", "synthetic"):
        raise CatalogError(f"goal_kind must be 'human' or 'synthetic', got {goal_kind!r}")
    if goal_kind == "human" and human is None:
        raise CatalogError("human goals need items_human_ins.json; pass it or use goal_kind='synthetic'")
    products = load_products(items, attributes, human if goal_kind == "human" else None, num_products)
    rng = random.Random(price_seed)
    prices = sample_prices(products, rng)
    goals = (human_goals if goal_kind == "human" else synthetic_goals)(products, prices, rng)
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return Catalog(products=tuple(products), prices=prices, goals=tuple(goals))
