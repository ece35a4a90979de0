"""Small WebShop records in the exact formats of the original files, written by hand for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _item(asin: str, name: str, pricing: str | None, options: dict[str, Any] | None, **extra: Any) -> dict:
    record = {
        "asin": asin,
        "name": name,
        "full_description": f"{name}. A product description.",
        "small_description": [f"{name} bullet one", "bullet two"],
        "pricing": pricing,
        "customization_options": options,
        "images": [f"https://example.invalid/{asin}.jpg"],
        "category": "fashion",
        "query": " Men's Shoes ",
        "product_category": "Clothing, Shoes & Jewelry › Men › Shoes",
        "brand": "dropped on load",
        "product_information": {"dropped": True},
    }
    record.update(extra)
    return record


ITEMS = [
    _item(
        "B000000001",
        "Trail Running Shoes",
        "$25.99",
        {
            "Size": [{"value": "9", "image": None}, {"value": "10", "image": None}],
            "Color": [
                {"value": " Black/White ", "image": "https://example.invalid/c1.jpg"},
                {"value": "Navy", "image": None},
                {"value": "Red", "image": None},
            ],
        },
    ),
    _item("nan", "A product with no asin", "$5.00", None),
    _item("B0000000012345", "An asin that is too long", "$5.00", None),
    _item("B000000002", "Leather Dress Shoes", "$40.00$60.50", {"Size": [{"value": "9"}], "Width": None}),
    _item("B000000001", "A duplicate of the first asin", "$1.00", None),
    _item("B000000003", "Canvas Sneakers", None, None, small_description="one bullet as a string"),
    _item("B000000004", "Rain Boots", "$1,299.00", {"Color": [{"value": "Yellow"}, {"value": "Green"}]}),
]

ATTRIBUTES = {
    "B000000001": {
        "attributes": ["rubber sole", "lace up"],
        "instruction": "i need trail running shoes with a rubber sole",
        "instruction_attributes": ["rubber sole"],
    },
    "B000000002": {
        "attributes": ["leather"],
        "instruction": "i want leather dress shoes",
        "instruction_attributes": ["leather"],
    },
    "B000000004": {
        "attributes": ["waterproof", "rubber"],
        "instruction": "find waterproof rain boots",
        "instruction_attributes": ["waterproof", "rubber"],
    },
}

HUMAN = {
    "B000000001": [
        {
            "instruction": "i need rubber sole trail running shoes in black, size 10.",
            "instruction_attributes": ["rubber sole"],
            "instruction_options": ["black", "10"],
            "assignment_id": "bookkeeping",
        },
        {"instruction": "shoes please", "instruction_attributes": [], "instruction_options": []},
    ],
    "B000000003": [
        {"instruction": "canvas sneakers", "instruction_attributes": ["canvas"], "instruction_options": []}
    ],
    "B0000000012345": [
        {"instruction": "skipped product", "instruction_attributes": ["x"], "instruction_options": []}
    ],
}

# Goals the original rules build from these records:
# human: B000000001 has one instruction with attributes (the other has none), B000000003 one -> 2.
# synthetic: B000000001 has 2 sizes x 3 colors = 6, B000000002 one size (width is null) = 1,
# B000000003 has no instruction, B000000004 two colors = 2 -> 9.
HUMAN_GOALS = 2
SYNTHETIC_GOALS = 9


def write_files(folder: Path, suffix: str = "") -> None:
    """Write the records as items_shuffle{suffix}.json, items_ins_v2{suffix}.json, items_human_ins.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"items_shuffle{suffix}.json").write_text(json.dumps(ITEMS))
    (folder / f"items_ins_v2{suffix}.json").write_text(json.dumps(ATTRIBUTES))
    (folder / "items_human_ins.json").write_text(json.dumps(HUMAN))
