"""Reading the real WebShop data files from a folder the user points to.

WebShop ships ``items_shuffle.json`` / ``items_shuffle_1000.json`` (products),
``items_ins_v2.json`` / ``items_ins_v2_1000.json`` (attributes and synthetic instructions) and
``items_human_ins.json`` (human instructions). ``small=True`` picks the ``_1000`` files, as
verl-agent's default ``use_small`` does. The records then go through
:func:`turngym.envs.webshop.catalog.build_catalog`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from turngym.envs.webshop.catalog import Catalog, build_catalog
from turngym.errors import CatalogError


def _read_json(path: Path, expected: type) -> Any:
    if not path.is_file():
        raise CatalogError(f"expected the WebShop file {path}, but it does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path} is not valid JSON ({exc}); re-download or regenerate it") from exc
    if not isinstance(data, expected):
        raise CatalogError(f"{path} must hold a JSON {expected.__name__}, got {type(data).__name__}")
    return data


def webshop_paths(folder: Path, small: bool = False) -> dict[str, Path]:
    """The three file paths in ``folder`` (``_1000`` variants when ``small``)."""
    suffix = "_1000" if small else ""
    return {
        "items": folder / f"items_shuffle{suffix}.json",
        "attributes": folder / f"items_ins_v2{suffix}.json",
        "human": folder / "items_human_ins.json",
    }


def load_catalog(
    folder: str | Path,
    *,
    goal_kind: str = "human",
    small: bool = False,
    num_products: int | None = None,
    price_seed: int = 0,
) -> Catalog:
    """A :class:`Catalog` from the WebShop files in ``folder`` (see the module docstring)."""
    paths = webshop_paths(Path(folder), small)
    items = _read_json(paths["items"], list)
    attributes = _read_json(paths["attributes"], dict)
    human = _read_json(paths["human"], dict) if goal_kind == "human" else None
    return build_catalog(
        items, attributes, human, goal_kind=goal_kind, num_products=num_products, price_seed=price_seed
    )
