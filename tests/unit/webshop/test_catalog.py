"""Field handling and goal rules of the WebShop loader, on hand-written records."""

from __future__ import annotations

import random

import pytest

from tests.unit.webshop.records import ATTRIBUTES, HUMAN, HUMAN_GOALS, ITEMS, SYNTHETIC_GOALS
from turngym.envs.webshop.catalog import (
    NO_PRICE_BOUND,
    build_catalog,
    load_products,
    normalize_options,
    parse_pricing,
    price_clause,
    split_goals,
)
from turngym.errors import CatalogError


@pytest.mark.parametrize(
    ("text", "values", "tag"),
    [
        ("$12.99", (12.99,), "$12.99"),
        ("$10.99$25.99", (10.99, 25.99), "$10.99 to $25.99"),
        ("$1$2$3", (1.0, 2.0), "$1.0 to $2.0"),
        ("$1,299.00", (1299.0,), "$1299.0"),
        (None, (100.0,), "$100.0"),
        ("", (100.0,), "$100.0"),
    ],
)
def test_parse_pricing(text: str | None, values: tuple[float, ...], tag: str) -> None:
    assert parse_pricing(text) == (values, tag)


def test_parse_pricing_rejects_text_without_a_dollar_amount() -> None:
    with pytest.raises(CatalogError, match="expected a price"):
        parse_pricing("twelve dollars")


def test_normalize_options_lowercases_strips_and_replaces_slashes() -> None:
    raw = {
        "Color": [{"value": " Black/White "}, {"value": "Navy"}],
        "Fit": None,
        "SIZE": [{"value": "X-Large"}],
    }
    assert normalize_options(raw) == {"color": ("black | white", "navy"), "size": ("x-large",)}
    assert normalize_options(None) == {}


def test_load_products_skips_bad_and_duplicate_asins_and_derives_fields() -> None:
    products = load_products(ITEMS, ATTRIBUTES, HUMAN)
    assert [p.asin for p in products] == ["B000000001", "B000000002", "B000000003", "B000000004"]
    shoes, dress, sneakers, boots = products
    assert shoes.title == "Trail Running Shoes" and shoes.query == "men's shoes"
    assert shoes.options == {"size": ("9", "10"), "color": ("black | white", "navy", "red")}
    assert shoes.attributes == ("rubber sole", "lace up") and shoes.rating == "N.A."
    assert len(shoes.human_instructions) == 2
    assert dress.pricing == (40.0, 60.5) and dress.price_tag == "$40.0 to $60.5"
    assert dress.options == {"size": ("9",)}
    assert sneakers.bullet_points == ("one bullet as a string",) and sneakers.attributes == ("DUMMY_ATTR",)
    assert sneakers.pricing == (100.0,) and sneakers.instruction is None
    assert boots.price_tag == "$1299.0"


def test_load_products_takes_the_first_num_products_records() -> None:
    assert [p.asin for p in load_products(ITEMS, ATTRIBUTES, None, num_products=4)] == [
        "B000000001",
        "B000000002",
    ]


def test_load_products_names_a_missing_field() -> None:
    broken = [{k: v for k, v in ITEMS[0].items() if k != "full_description"}]
    with pytest.raises(CatalogError, match="product record 0: expected the field 'full_description'"):
        load_products(broken, {}, None)


@pytest.mark.parametrize(
    ("price", "candidates"),
    [(12.5, (20.0, 30.0, 40.0, 50.0)), (975.0, (980.0, 990.0)), (10.0, (20.0, 30.0, 40.0, 50.0))],
)
def test_price_clause_samples_two_of_the_next_four_bounds(price: float, candidates: tuple) -> None:
    for seed in range(30):
        upper, text = price_clause(price, random.Random(seed))
        assert upper in candidates[1:] and upper > price
        assert text == f", and price lower than {upper:.2f} dollars"


def test_price_clause_without_two_candidates_has_no_bound() -> None:
    assert price_clause(985.0, random.Random(0)) == (NO_PRICE_BOUND, "")
    assert price_clause(2000.0, random.Random(0)) == (NO_PRICE_BOUND, "")


def test_human_goals_follow_the_original_rules() -> None:
    catalog = build_catalog(ITEMS, ATTRIBUTES, HUMAN, goal_kind="human")
    assert len(catalog.goals) == HUMAN_GOALS
    goal = next(g for g in catalog.goals if g.asin == "B000000001")
    assert goal.instruction_text.startswith("i need rubber sole trail running shoes in black, size 10,")
    assert goal.goal_options == ("black", "10") and goal.attributes == ("rubber sole",)
    assert goal.price_upper in (40.0, 50.0, 60.0)  # 25.99 -> candidates 30, 40, 50, 60; the larger of 2
    assert goal.name == "Trail Running Shoes" and goal.weight == 1.0
    sneakers = next(g for g in catalog.goals if g.asin == "B000000003")
    assert catalog.prices["B000000003"] == 100.0 and sneakers.instruction_text.startswith("canvas sneakers")


def test_synthetic_goals_enumerate_option_combinations_with_weights() -> None:
    catalog = build_catalog(ITEMS, ATTRIBUTES, None, goal_kind="synthetic")
    assert len(catalog.goals) == SYNTHETIC_GOALS
    shoes = [g for g in catalog.goals if g.asin == "B000000001"]
    assert len(shoes) == 6
    assert {g.goal_options for g in shoes} == {
        (("color", c), ("size", s)) for c in ("black | white", "navy", "red") for s in ("9", "10")
    }
    navy10 = next(g for g in shoes if g.goal_options == (("color", "navy"), ("size", "10")))
    assert navy10.instruction_text.startswith(
        "i need trail running shoes with a rubber sole with color: navy, and size: 10, and price lower than"
    )
    # "rubber sole" is carried by 6 goals, "leather" by 1, ("waterproof", "rubber") by 2 each.
    assert navy10.weight == pytest.approx(1 / 6)
    assert next(g for g in catalog.goals if g.asin == "B000000002").weight == pytest.approx(1.0)
    assert next(g for g in catalog.goals if g.asin == "B000000004").weight == pytest.approx(0.5)
    dress = next(g for g in catalog.goals if g.asin == "B000000002")
    assert dress.instruction_text.startswith("i want leather dress shoes with size: 9, and price lower than")
    assert 40.0 <= catalog.prices["B000000002"] <= 60.5


def test_goals_are_shuffled_with_seed_233_like_the_original() -> None:
    catalog = build_catalog(ITEMS, ATTRIBUTES, None, goal_kind="synthetic")
    generation_order = [
        *(
            ("B000000001", (("color", c), ("size", s)))
            for c in ("black | white", "navy", "red")
            for s in ("9", "10")
        ),
        ("B000000002", (("size", "9"),)),
        ("B000000004", (("color", "yellow"),)),
        ("B000000004", (("color", "green"),)),
    ]
    state = random.getstate()
    try:
        random.seed(233)  # what the original SimServer does before shuffling its goal list
        random.shuffle(generation_order)
    finally:
        random.setstate(state)
    assert [(g.asin, g.goal_options) for g in catalog.goals] == generation_order


def test_splits_cut_the_shuffled_goals_by_index() -> None:
    goals = list(range(2000))
    assert split_goals(goals, "test") == list(range(500))  # type: ignore[arg-type]
    assert split_goals(goals, "eval") == list(range(500, 1500))  # type: ignore[arg-type]
    assert split_goals(goals, "train") == list(range(1500, 2000))  # type: ignore[arg-type]
    assert len(split_goals(goals, "all")) == 2000  # type: ignore[arg-type]
    with pytest.raises(CatalogError, match="split must be one of"):
        split_goals(goals, "validation")  # type: ignore[arg-type]


def test_build_catalog_rejects_unknown_goal_kinds_and_missing_human_file() -> None:
    with pytest.raises(CatalogError, match="goal_kind must be"):
        build_catalog(ITEMS, ATTRIBUTES, HUMAN, goal_kind="crowd")
    with pytest.raises(CatalogError, match=r"human goals need items_human_ins\.json"):
        build_catalog(ITEMS, ATTRIBUTES, None, goal_kind="human")
