"""``turngym/Maze-v0``: find the treasure in a maze of named rooms.

Task ``k`` of a split is a ``size × size`` grid of rooms whose doors form a random spanning tree
(plus a few extra doors), drawn from a generator seeded by ``(split, k)``; the start and treasure
rooms are drawn from the same generator. Every room has a fixed name, so the anchor
``(task_id, room)`` names the state exactly (an invalid action, whose observation is prefixed with
what went wrong, leaves it unchanged) and trajectories of one group revisit the same states often —
the anchors that GiGPO and SALT group on.

Observation: ``You are in the <room>. Exits: north, east. The treasure is 2 rooms south and
1 room west.`` Actions: ``go <direction>`` for an open exit (the admissible actions). A wall or an
unknown command answers with what went wrong and counts as invalid. Reward 1.0 on reaching the
treasure (terminated); ``max_turns`` (default 20) truncates.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.toy import task_index

ROOM_NAMES = (
    "hall", "kitchen", "library", "study", "pantry", "cellar", "attic", "garden", "gallery",
    "chapel", "armory", "bakery", "bath", "barn", "loft", "office", "parlor", "porch", "studio",
    "vault", "workshop", "nursery", "den", "foyer", "garage",
)  # fmt: skip
DIRECTIONS = {"north": (-1, 0), "south": (1, 0), "west": (0, -1), "east": (0, 1)}
SPLITS = {"train": 0, "test": 1_000_003}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def neighbours(cell: tuple[int, int], size: int) -> list[tuple[int, int]]:
    """The cells next to ``cell`` on a ``size × size`` grid (north, south, west, east order)."""
    r, c = cell
    return [(r + dr, c + dc) for dr, dc in DIRECTIONS.values() if 0 <= r + dr < size and 0 <= c + dc < size]


def spanning_doors(
    rng: np.random.Generator, size: int, extra: float = 0.1
) -> set[frozenset[tuple[int, int]]]:
    """Doors of a ``size × size`` grid: a random spanning tree (randomized Prim), plus each other
    wall opened with probability ``extra`` so that more than one path exists."""
    cells = [(r, c) for r in range(size) for c in range(size)]
    visited, doors = {cells[int(rng.integers(len(cells)))]}, set()
    while len(visited) < len(cells):
        frontier = sorted((a, b) for a in visited for b in neighbours(a, size) if b not in visited)
        a, b = frontier[int(rng.integers(len(frontier)))]
        doors.add(frozenset((a, b)))
        visited.add(b)
    for a in cells:
        for b in neighbours(a, size):
            if rng.random() < extra:
                doors.add(frozenset((a, b)))
    return doors


class MazeEnv(TextEnv):
    """Navigate a maze of named rooms to the treasure."""

    description = "Find the treasure in a maze of named rooms (toy; many repeated states)"

    def __init__(
        self, *, size: int = 3, split: str = "train", tasks: int = 1000, max_turns: int = 20, **kwargs: Any
    ) -> None:
        if not 2 <= size <= 5:
            raise ValueError(
                f"size must be between 2 and 5 (at most {len(ROOM_NAMES)} named rooms), got {size}"
            )
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        super().__init__(max_turns=max_turns, **kwargs)
        self.size, self.split, self._tasks = size, split, tasks
        self._doors: set[frozenset[tuple[int, int]]] = set()
        self._pos = self._goal = (0, 0)

    @property
    def num_tasks(self) -> int:
        return self._tasks

    @property
    def system_prompt(self) -> str:
        return (
            "You are exploring a maze of rooms to find the treasure. Each turn, reply with one action "
            "of the form 'go <direction>' using one of the listed exits."
        )

    def _reset(self, task_id: Any) -> str:
        rng = np.random.default_rng([SPLITS[self.split], task_index(task_id), self.size])
        cells = [(r, c) for r in range(self.size) for c in range(self.size)]
        self._doors = spanning_doors(rng, self.size)
        start, goal = rng.choice(len(cells), size=2, replace=False)
        self._pos, self._goal = cells[int(start)], cells[int(goal)]
        return self._describe("")

    def _exits(self) -> list[str]:
        r, c = self._pos
        return [
            d for d, (dr, dc) in DIRECTIONS.items() if frozenset((self._pos, (r + dr, c + dc))) in self._doors
        ]

    def _room(self, cell: tuple[int, int]) -> str:
        return ROOM_NAMES[cell[0] * self.size + cell[1]]

    def _describe(self, prefix: str) -> str:
        dr, dc = self._goal[0] - self._pos[0], self._goal[1] - self._pos[1]
        parts = [
            _plural(abs(dr), "room") + (" south" if dr > 0 else " north") if dr else "",
            _plural(abs(dc), "room") + (" east" if dc > 0 else " west") if dc else "",
        ]
        hint = " and ".join(p for p in parts if p)
        return (
            f"{prefix}You are in the {self._room(self._pos)}. Exits: {', '.join(self._exits())}. "
            f"The treasure is {hint}."
        )

    def anchor(self) -> tuple[int, str]:
        """``(task_id, room)``: the whole state, since the maze of a task is fixed."""
        return (int(self.task_id), self._room(self._pos))

    def admissible_actions(self) -> list[str]:
        return [f"go {d}" for d in self._exits()]

    def _step(self, action: str) -> StepOutcome:
        words = action.strip().lower().rstrip(".").split()
        if len(words) == 1 and words[0] in DIRECTIONS:
            words = ["go", words[0]]
        if len(words) != 2 or words[0] != "go" or words[1] not in DIRECTIONS:
            return StepOutcome(
                self._describe(f"I don't understand {action.strip()[:80]!r}; say 'go <direction>'. "),
                invalid_action=True,
            )
        if words[1] not in self._exits():
            return StepOutcome(self._describe(f"You can't go {words[1]} from here. "), invalid_action=True)
        dr, dc = DIRECTIONS[words[1]]
        self._pos = (self._pos[0] + dr, self._pos[1] + dc)
        if self._pos == self._goal:
            return StepOutcome(
                f"You are in the {self._room(self._pos)}. You found the treasure!",
                reward=1.0,
                terminated=True,
                won=True,
            )
        return StepOutcome(self._describe(""))

    def expert_action(self) -> str:
        """First step of a shortest path to the treasure (breadth-first search)."""
        previous: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {self._goal: None}
        queue = deque([self._goal])
        while queue:
            cell = queue.popleft()
            for d, (dr, dc) in DIRECTIONS.items():
                nxt = (cell[0] - dr, cell[1] - dc)
                if nxt not in previous and frozenset((cell, nxt)) in self._doors:
                    previous[nxt] = (cell, d)
                    queue.append(nxt)
        step = previous[self._pos]
        assert step is not None, "the expert is asked for an action only before the treasure is found"
        return f"go {step[1]}"
