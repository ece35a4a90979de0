"""The real-format loader reads files written in WebShop's exact layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.webshop.records import HUMAN_GOALS, SYNTHETIC_GOALS, write_files
from turngym.envs.webshop.catalog import Goal
from turngym.envs.webshop.files import load_catalog
from turngym.envs.webshop.generate import generate_records, write_records
from turngym.errors import CatalogError


def test_round_trip_of_the_three_files(tmp_path: Path) -> None:
    write_files(tmp_path)
    catalog = load_catalog(tmp_path, goal_kind="human")
    assert [p.asin for p in catalog.products] == ["B000000001", "B000000002", "B000000003", "B000000004"]
    assert catalog.by_asin["B000000001"].options["color"] == ("black | white", "navy", "red")
    assert len(catalog.goals) == HUMAN_GOALS
    assert len(load_catalog(tmp_path, goal_kind="synthetic").goals) == SYNTHETIC_GOALS


def test_small_files_use_the_1000_suffix(tmp_path: Path) -> None:
    write_files(tmp_path, suffix="_1000")
    assert len(load_catalog(tmp_path, goal_kind="synthetic", small=True).goals) == SYNTHETIC_GOALS
    with pytest.raises(CatalogError, match=r"items_shuffle\.json, but it does not exist"):
        load_catalog(tmp_path, goal_kind="synthetic")


def test_num_products_cuts_the_product_list(tmp_path: Path) -> None:
    write_files(tmp_path)
    catalog = load_catalog(tmp_path, goal_kind="synthetic", num_products=4)  # 4 records -> 2 products
    assert len(catalog.products) == 2 and len(catalog.goals) == 6 + 1


def test_malformed_files_name_the_problem(tmp_path: Path) -> None:
    write_files(tmp_path)
    (tmp_path / "items_ins_v2.json").write_text("{not json")
    with pytest.raises(CatalogError, match=r"items_ins_v2\.json is not valid JSON"):
        load_catalog(tmp_path, goal_kind="synthetic")
    (tmp_path / "items_ins_v2.json").write_text("[]")
    with pytest.raises(CatalogError, match="must hold a JSON dict, got list"):
        load_catalog(tmp_path, goal_kind="synthetic")


def test_generated_files_load_like_real_ones(tmp_path: Path) -> None:
    write_records(tmp_path, num_products=120, seed=3)
    items, attributes, human = generate_records(120, seed=3)
    human_catalog = load_catalog(tmp_path, goal_kind="human")
    assert len(human_catalog.products) == 120 and len(human_catalog.goals) == 120  # one instruction each
    synthetic = load_catalog(tmp_path, goal_kind="synthetic")
    expected = 0
    for item in items:
        count = 1
        for values in item["customization_options"].values():
            count *= len(values)
        expected += count
    assert len(synthetic.goals) == expected
    for g in human_catalog.goals[:20]:
        assert isinstance(g, Goal) and g.price_upper > human_catalog.prices[g.asin]
        assert set(g.attributes) <= set(attributes[g.asin]["attributes"])
        assert list(g.goal_options) == human[g.asin][0]["instruction_options"]
