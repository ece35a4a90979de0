"""Toy environments for fast tests and first demos: a maze and a calculator tool-use task."""

from __future__ import annotations

from typing import Any

import numpy as np


def task_index(task_id: Any) -> int:
    """``task_id`` as a non-negative int (a toy env generates a task for any of them).

    Raises ``ValueError`` naming the bad id otherwise.
    """
    if isinstance(task_id, bool) or not isinstance(task_id, int | np.integer) or task_id < 0:
        raise ValueError(f"task_id must be a non-negative integer, got {task_id!r}")
    return int(task_id)
