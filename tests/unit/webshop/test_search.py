"""BM25 search: indexed text, ranking, the top-50 cut and the on-disk cache."""

from __future__ import annotations

from pathlib import Path

from turngym.envs.webshop.catalog import Product
from turngym.envs.webshop.search import ProductSearch, document_text


def make(
    asin: str, title: str, description: str = "", bullets: tuple[str, ...] = ("",), **options
) -> Product:
    return Product(
        asin=asin,
        title=title,
        description=description,
        bullet_points=bullets,
        price_tag="$1.0",
        pricing=(1.0,),
        options={k: tuple(v) for k, v in options.items()},
        attributes=(),
        category="c",
        query="q",
        product_category="a › b",
    )


PRODUCTS = [
    make("A1", "Red Running Shoes", "Shoes for running on roads.", ("Rubber sole", "Mesh")),
    make("A2", "Blue Cotton Shirt", "A soft shirt.", ("Machine wash",), color=["red", "blue"]),
    make("A3", "Wooden Chair", "A chair with cushions.", ()),
    make("A4", "Red Apple Juice", "Juice from red apples.", ("Organic",)),
]


def test_document_text_joins_title_description_first_bullet_and_options() -> None:
    assert document_text(PRODUCTS[0]) == "red running shoes shoes for running on roads. rubber sole "
    assert document_text(PRODUCTS[1]) == "blue cotton shirt a soft shirt. machine wash color: red, blue"
    assert document_text(PRODUCTS[2]) == "wooden chair a chair with cushions.  "


def test_ranking_stemming_and_only_matching_documents(tmp_path: Path) -> None:
    engine = ProductSearch(PRODUCTS, tmp_path)
    assert engine.search("running shoes") == ["A1"]
    assert engine.search("RUN   shoe") == ["A1"]  # lowercased, Porter-stemmed
    assert engine.search("chairs")[0] == "A3"
    assert set(engine.search("red")) == {"A1", "A2", "A4"}
    assert (
        engine.search("xylophone") == [] and engine.search("the and of") == [] and engine.search("  ") == []
    )


def test_top_fifty_cut(tmp_path: Path) -> None:
    many = [make(f"B{i:03d}", f"Green Tea number {i}", "tea " * (1 + i % 5)) for i in range(70)]
    engine = ProductSearch(many, tmp_path)
    hits = engine.search("green tea")
    assert len(hits) == 50 and len(set(hits)) == 50
    assert len(engine.search("green tea", k=5)) == 5


def test_index_is_cached_on_disk_by_catalog_hash(tmp_path: Path) -> None:
    first = ProductSearch(PRODUCTS, tmp_path)
    assert not first.loaded_from_cache and (tmp_path / first.key / "asins.json").is_file()
    second = ProductSearch(PRODUCTS, tmp_path)
    assert second.loaded_from_cache and second.key == first.key
    assert second.search("wooden chair") == first.search("wooden chair") == ["A3"]
    other = ProductSearch([*PRODUCTS[:3], make("A4", "Red Apple Cider")], tmp_path)
    assert other.key != first.key and not other.loaded_from_cache
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2
