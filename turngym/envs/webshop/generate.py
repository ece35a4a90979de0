"""A generated WebShop catalog in the original file formats (research note §1.8).

:func:`generate_records` writes, from a seed, the three records WebShop reads: ``items`` (the
``items_shuffle.json`` list), ``attributes`` (``items_ins_v2.json``: attributes plus a synthetic
instruction per asin) and ``human`` (``items_human_ins.json``: one human-style instruction per
asin with ``instruction_attributes`` and ``instruction_options``). They then go through the same
loader and goal rules as the real files (:mod:`turngym.envs.webshop.catalog`).

Each of five scrape categories has four product types; a type fixes the scrape ``query``, the
breadcrumb, the noun used in titles, a vocabulary of attributes and its option axes. A product
draws a brand, three or four attributes (named in its title, bullets and description), a subset
of every option axis and a price or price range. Products of one type share query and breadcrumb
and differ in attributes and options, so they are near-duplicate distractors: the right one is
found by its attributes and bought with the right options.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BRANDS = (
    "Lumina Northpeak Verdana Oakhurst Zephyr Brightline Cobalt Meridian Hollis Tandem Kestrel Solace "
    "Fairway Quill Aurora Bramble Vantage Nimbus Harbor Juniper"
).split()


@dataclass(frozen=True)
class ProductType:
    """What products of one kind have in common."""

    category: str
    noun: str
    query: str
    breadcrumb: str
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: tuple[float, float]


def _t(
    category: str,
    noun: str,
    query: str,
    crumb: str,
    attrs: str,
    options: dict[str, str],
    lo: float,
    hi: float,
) -> ProductType:
    return ProductType(
        category,
        noun,
        query,
        crumb,
        tuple(attrs.split(", ")),
        {k: tuple(v.split(", ")) for k, v in options.items()},
        (lo, hi),
    )


SIZES = "small, medium, large, x-large, xx-large"
TYPES = (
    _t(
        "beauty",
        "shampoo",
        "sulfate free shampoo",
        "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos",
        "sulfate free, paraben free, argan oil, dry hair, hair growth, cruelty free, natural ingredients",
        {
            "size": "8 fl oz, 12 fl oz, 16 fl oz, 32 fl oz",
            "scent": "lavender, coconut, unscented, citrus, mint",
        },
        6,
        40,
    ),
    _t(
        "beauty",
        "lipstick",
        "matte lipstick",
        "Beauty & Personal Care › Makeup › Lips › Lipstick",
        "long lasting, matte finish, cruelty free, vegan, moisturizing, waterproof, easy carry",
        {"color": "ruby red, nude, pink, plum, coral, berry"},
        5,
        30,
    ),
    _t(
        "beauty",
        "face moisturizer",
        "face moisturizer",
        "Beauty & Personal Care › Skin Care › Face › Moisturizers",
        "anti aging, hyaluronic acid, sensitive skin, fragrance free, oil free, non greasy, dark spot",
        {"size": "1.7 oz, 2.5 oz, 3.4 oz"},
        8,
        60,
    ),
    _t(
        "beauty",
        "makeup brush set",
        "makeup brushes",
        "Beauty & Personal Care › Tools & Accessories › Makeup Brushes",
        "synthetic hair, easy clean, travel size, high quality, eco friendly, storage case",
        {"color": "rose gold, black, white, purple", "size": "10 piece, 14 piece, 18 piece"},
        9,
        45,
    ),
    _t(
        "electronics",
        "wireless earbuds",
        "wireless earbuds",
        "Electronics › Headphones › Earbud Headphones",
        "noise cancelling, bluetooth 5.0, water resistant, fast charging, long battery life, hands free",
        {"color": "black, white, navy blue, gray"},
        15,
        150,
    ),
    _t(
        "electronics",
        "usb c charger",
        "usb c charger",
        "Electronics › Accessories › Chargers & Adapters",
        "fast charging, compact design, overcurrent protection, dual port, foldable plug, high power",
        {"color": "black, white", "style": "1 pack, 2 pack, 3 pack"},
        9,
        50,
    ),
    _t(
        "electronics",
        "hdmi cable",
        "hdmi cable",
        "Electronics › Television & Video › Accessories › Cables › HDMI Cables",
        "high speed, 4k ultra hd, gold plated, braided nylon, ethernet channel, plug and play",
        {"size": "3 feet, 6 feet, 10 feet, 15 feet", "color": "black, gray"},
        5,
        35,
    ),
    _t(
        "electronics",
        "power bank",
        "portable power bank",
        "Electronics › Portable Power › Power Banks",
        "fast charging, usb c, lightweight, led display, compact design, high capacity",
        {"color": "black, white, blue, pink", "style": "10000mah, 20000mah"},
        12,
        80,
    ),
    _t(
        "fashion",
        "running shoes",
        "men's running shoes",
        "Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running",
        "non slip, rubber sole, breathable mesh, lightweight, arch support, memory foam, lace up",
        {"size": "7, 8, 9, 10, 11, 12", "color": "black, white, gray, navy, red"},
        25,
        120,
    ),
    _t(
        "fashion",
        "yoga pants",
        "women's yoga pants",
        "Clothing, Shoes & Jewelry › Women › Clothing › Active › Leggings",
        "high waist, tummy control, moisture wicking, four way stretch, machine wash, quick dry",
        {"size": SIZES, "color": "black, navy, heather gray, burgundy, olive"},
        12,
        55,
    ),
    _t(
        "fashion",
        "t-shirt",
        "men's t-shirt",
        "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts",
        "cotton, short sleeve, machine wash, classic fit, crew neck, relaxed fit",
        {"size": SIZES, "color": "white, black, navy, royal blue, red, green"},
        8,
        35,
    ),
    _t(
        "fashion",
        "winter jacket",
        "women's winter jacket",
        "Clothing, Shoes & Jewelry › Women › Clothing › Coats & Jackets",
        "water resistant, hooded, zipper closure, warm fleece, windproof, hand wash",
        {"size": SIZES, "color": "black, camel, olive, wine red, cream"},
        40,
        200,
    ),
    _t(
        "food",
        "green tea",
        "green tea bags",
        "Grocery & Gourmet Food › Beverages › Tea › Green",
        "organic, gluten free, non gmo, individually wrapped, sugar free, kosher",
        {"flavor name": "jasmine, mint, lemon, peach, original", "size": "20 count, 50 count, 100 count"},
        4,
        30,
    ),
    _t(
        "food",
        "protein bars",
        "protein bars",
        "Grocery & Gourmet Food › Snacks › Bars › Protein Bars",
        "gluten free, high protein, low sugar, keto friendly, plant based, non gmo",
        {
            "flavor name": "chocolate chip, peanut butter, cookie dough, vanilla almond",
            "size": "12 count, 24 count",
        },
        14,
        60,
    ),
    _t(
        "food",
        "coffee beans",
        "whole bean coffee",
        "Grocery & Gourmet Food › Beverages › Coffee › Whole Bean",
        "whole bean, dark roast, fair trade, organic, medium roast, single origin",
        {"size": "12 ounce, 2 pound, 5 pound", "flavor name": "colombian, french roast, breakfast blend"},
        9,
        70,
    ),
    _t(
        "food",
        "mixed nuts",
        "mixed nuts",
        "Grocery & Gourmet Food › Snacks › Nuts & Seeds › Mixed Nuts",
        "low sodium, resealable bag, dry roasted, high protein, gluten free, keto friendly",
        {"size": "8 ounce, 16 ounce, 40 ounce"},
        6,
        35,
    ),
    _t(
        "furniture",
        "office chair",
        "ergonomic office chair",
        "Home & Kitchen › Furniture › Home Office Furniture › Chairs",
        "lumbar support, height adjustable, easy assemble, mesh back, swivel wheels, padded armrests",
        {"color": "black, gray, white, blue"},
        60,
        300,
    ),
    _t(
        "furniture",
        "bookshelf",
        "bookshelf",
        "Home & Kitchen › Furniture › Living Room Furniture › Bookcases",
        "solid wood, easy assemble, space saving, storage space, anti tip, living room",
        {"color": "white, espresso, oak, black", "size": "3 tier, 4 tier, 5 tier"},
        30,
        180,
    ),
    _t(
        "furniture",
        "coffee table",
        "coffee table",
        "Home & Kitchen › Furniture › Living Room Furniture › Tables",
        "living room, storage space, easy assemble, solid wood, tempered glass, mid century",
        {"color": "walnut, white, black, natural"},
        40,
        260,
    ),
    _t(
        "furniture",
        "bed frame",
        "metal bed frame",
        "Home & Kitchen › Furniture › Bedroom Furniture › Beds & Frames",
        "no box spring needed, heavy duty, easy assemble, wood slat support, noise free, under bed storage",
        {"size": "twin, full, queen, king", "color": "black, white, brown"},
        70,
        400,
    ),
)

OPENERS = ("i need", "i'm looking for", "i want to buy", "find me", "i would like")


def _asin(rng: random.Random, used: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        if asin not in used:
            used.add(asin)
            return asin


def _article(words: str) -> str:
    return "an" if words[0] in "aeiou" else "a"


def _product(kind: ProductType, rng: random.Random, asin: str) -> dict[str, Any]:
    attrs = rng.sample(kind.attributes, rng.choice((3, 4)))
    brand = rng.choice(BRANDS)
    title = f"{brand} {kind.noun.title()} - {', '.join(a.title() for a in attrs[:2])}"
    options = {
        name: [{"value": v, "image": None} for v in sorted(rng.sample(values, max(1, len(values) - 1)))]
        for name, values in kind.options.items()
    }
    lo = round(rng.uniform(*kind.price), 2)
    pricing = f"${lo}" if rng.random() < 0.7 else f"${lo}${round(lo * rng.uniform(1.1, 1.6), 2)}"
    return {
        "asin": asin,
        "name": title,
        "full_description": f"The {brand} {kind.noun} is {', '.join(attrs[:-1])} and {attrs[-1]}. "
        f"Made for everyday use and backed by a one year warranty.",
        "small_description": [f"{a.capitalize()}: chosen with care for daily use." for a in attrs[1:]],
        "pricing": pricing,
        "customization_options": options,
        "images": [f"https://example.invalid/{asin}.jpg"],
        "category": kind.category,
        "query": kind.query,
        "product_category": kind.breadcrumb,
        "_attributes": attrs,
    }


def _instructions(item: dict[str, Any], kind: ProductType, rng: random.Random) -> tuple[dict, dict]:
    attrs: list[str] = item.pop("_attributes")
    wanted = rng.sample(attrs, rng.choice((1, 2, 2, 3)))
    described = " and ".join(wanted)
    synthetic = {
        "attributes": attrs,
        "instruction": f"i need {_article(described)} {described} {kind.noun}",
        "instruction_attributes": wanted,
    }
    axes = list(item["customization_options"].items())
    chosen = rng.sample(axes, min(len(axes), rng.choice((1, 1, 2))))
    values = [rng.choice(contents)["value"] for _, contents in chosen]
    opener = rng.choice(OPENERS)
    text = f"{opener} {described} {kind.noun}"
    if chosen:
        text += " in " + " and ".join(f"{name} {v}" for (name, _), v in zip(chosen, values, strict=True))
    human = {"instruction": text, "instruction_attributes": wanted, "instruction_options": values}
    return synthetic, human


def generate_records(num_products: int = 2000, seed: int = 0) -> tuple[list, dict, dict]:
    """``(items, attributes, human)`` in the formats of the three WebShop files."""
    rng = random.Random(seed)
    used: set[str] = set()
    items: list[dict[str, Any]] = []
    attributes: dict[str, dict[str, Any]] = {}
    human: dict[str, list[dict[str, Any]]] = {}
    for i in range(num_products):
        kind = TYPES[i % len(TYPES)]
        item = _product(kind, rng, _asin(rng, used))
        attributes[item["asin"]], record = _instructions(item, kind, rng)
        human[item["asin"]] = [record]
        items.append(item)
    rng.shuffle(items)
    return items, attributes, human


def write_records(folder: Path, num_products: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Write the generated catalog as ``items_shuffle.json``, ``items_ins_v2.json`` and
    ``items_human_ins.json`` in ``folder``."""
    items, attributes, human = generate_records(num_products, seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in (("items_shuffle", items), ("items_ins_v2", attributes), ("items_human_ins", human)):
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    return paths
