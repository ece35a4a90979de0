"""Text spaces for free-form observations and actions.

Gymnasium's ``spaces.Text`` accepts only characters of a fixed charset (alphanumerics by default)
and rejects the punctuation, newlines and unicode that every text environment produces.
:class:`FreeText` keeps ``spaces.Text`` as its base (so Gymnasium's checker and wrappers treat it as
a text space) but ``contains`` accepts any ``str`` whose length lies within bounds. ``sample``
still draws from the charset, which is enough for smoke tests.
"""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

_PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


class FreeText(spaces.Text):
    """A ``spaces.Text`` that contains any string of ``min_length..max_length`` characters."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None) -> None:
        super().__init__(max_length=max_length, min_length=min_length, charset=_PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FreeText({self.min_length}, {self.max_length})"
