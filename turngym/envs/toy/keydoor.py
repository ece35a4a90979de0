"""``turngym/KeyDoor-v0``: fetch a key, then open the locked treasure room, with a paid compass tool.

A long-horizon task family built so that step-level credit has something to act on: sampled
episodes take 10-30 turns, the only reward comes at the end, the same few states recur inside an episode
and across the episodes of a group, and the agent has a tool that helps but costs.

Task ``k`` of a split is a ``size × size`` grid of named rooms (the maze's names) whose doors form
a random spanning tree plus a few extra doors, with a start room, a key room and a treasure room,
all drawn from a generator seeded by ``(split, k, size)``. The treasure room's doors are locked
until the agent carries the key.

Actions (one per turn):

* ``go <direction>`` through an open exit; into the treasure room only with the key (without it
  the move is refused and the agent stays: a valid action that wastes a turn).
* ``take key`` in the key room.
* ``<tool_call>{"name": "compass"}</tool_call>`` — the compass tool locates the current goal (the
  key, or the treasure once the key is carried) and answers where it is, followed by the room
  (``Result: The key is 1 room south and 2 rooms east. You are in the hall. Exits: ...``); from
  then on every observation says where that goal is, until the key is taken (the treasure is not
  located yet). Before a call, observations say only the room and its exits, so the tool is
  needed once per goal: twice an episode. Every call costs ``tool_cost``, paid out of the final
  reward, so calls beyond those two are waste.

Reward: ``max(0, 1 - tool_cost · calls)`` on entering the treasure room with the key (terminated,
``won``); nothing otherwise; ``max_turns`` (default 30) truncates. Anything else — an unknown
command, a wall, ``take key`` where there is none, a malformed or unknown tool call — is an
invalid action whose observation says what was wrong; the state does not change.

Anchor: ``(task_id, room, has_key, located)``. The compass count is left out on purpose (as the
turn count is): it changes only the size of the final reward, and leaving it out makes a
redundant compass call a self-loop on its state, so that GiGPO's step groups hold both the wasted
call and the moves made from that room, and the trajectories of a group share states wherever
their paths cross.

The expert calls the compass when the current goal is not located, takes the key in the key room,
and otherwise walks a shortest path (breadth-first search): two calls and about 8 turns on 3 × 3
rooms. A policy that follows the located goal's direction through open exits gets far, as in the
maze; where walls force a detour, the sampled policy wanders and the 30-turn limit bites.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.toy import task_index
from turngym.envs.toy.maze import DIRECTIONS, ROOM_NAMES, SPLITS, spanning_doors
from turngym.errors import ToolArgumentError, ToolNotFound
from turngym.tools import Tool, Toolbox, parse_tool_calls

Cell = tuple[int, int]
COMPASS_CALL = '<tool_call>{"name": "compass"}</tool_call>'
"""The compass call as the expert writes it."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def displacement(src: Cell, dst: Cell) -> str:
    """``'1 room south and 2 rooms east'`` from ``src`` to ``dst`` (``'here'`` when equal)."""
    dr, dc = dst[0] - src[0], dst[1] - src[1]
    parts = [
        _plural(abs(dr), "room") + (" south" if dr > 0 else " north") if dr else "",
        _plural(abs(dc), "room") + (" east" if dc > 0 else " west") if dc else "",
    ]
    return " and ".join(p for p in parts if p) or "here"


class KeyDoorEnv(TextEnv):
    """Take the key, then enter the locked treasure room; a compass tool tells where, at a price."""

    description = "Fetch a key, open the locked treasure room; a paid compass tool (long horizon, toy)"

    def __init__(
        self,
        *,
        size: int = 3,
        split: str = "train",
        tasks: int = 1000,
        max_turns: int = 30,
        tool_cost: float = 0.03,
        **kwargs: Any,
    ) -> None:
        if not 2 <= size <= 5:
            raise ValueError(
                f"size must be between 2 and 5 (at most {len(ROOM_NAMES)} named rooms), got {size}"
            )
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if not 0.0 <= tool_cost <= 1.0:
            raise ValueError(f"tool_cost must be between 0 and 1, got {tool_cost}")
        super().__init__(max_turns=max_turns, **kwargs)
        self.size, self.split, self._tasks, self.tool_cost = size, split, tasks, tool_cost
        self._toolbox = Toolbox([Tool.from_function(self.compass)])
        self._doors: set[frozenset[Cell]] = set()
        self._pos = self._key = self._goal = (0, 0)
        self._has_key = False
        self._calls = 0
        self._located = False

    @property
    def num_tasks(self) -> int:
        return self._tasks

    @property
    def system_prompt(self) -> str:
        return (
            "Take the key, then enter the locked treasure room. Actions: go <direction>, take key, "
            f"or {COMPASS_CALL} (tells where to go, costs reward)."
        )

    def _reset(self, task_id: Any) -> str:
        rng = np.random.default_rng([SPLITS[self.split], task_index(task_id), self.size, 17])
        self._doors = spanning_doors(rng, self.size)
        cells = [(r, c) for r in range(self.size) for c in range(self.size)]
        self._goal = cells[int(rng.integers(len(cells)))]
        while True:  # a start from which some key room is reachable without the locked room
            self._pos = cells[int(rng.integers(len(cells)))]
            reachable = sorted(self._reachable(self._pos) - {self._pos}) if self._pos != self._goal else []
            if reachable:
                break
        self._key = reachable[int(rng.integers(len(reachable)))]
        self._has_key = False
        self._calls = 0
        self._located = False
        return self._describe("")

    def _reachable(self, start: Cell) -> set[Cell]:
        """Rooms reachable from ``start`` without entering the (locked) treasure room."""
        seen, queue = {start}, deque([start])
        while queue:
            r, c = queue.popleft()
            for dr, dc in DIRECTIONS.values():
                nxt = (r + dr, c + dc)
                if nxt not in seen and nxt != self._goal and frozenset(((r, c), nxt)) in self._doors:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    # ---- state and text ---------------------------------------------------------------------
    def _room(self, cell: Cell) -> str:
        return ROOM_NAMES[cell[0] * self.size + cell[1]]

    def _exits(self) -> list[str]:
        r, c = self._pos
        return [
            d for d, (dr, dc) in DIRECTIONS.items() if frozenset((self._pos, (r + dr, c + dc))) in self._doors
        ]

    def _describe(self, prefix: str, *, where: bool = True) -> str:
        if self._has_key:
            item = " You carry the key."
        elif self._pos == self._key:
            item = " The key is here."
        else:
            item = ""
        hint = f" {self.compass()}" if where and self._located and self._pos != self._key else ""
        return (
            f"{prefix}You are in the {self._room(self._pos)}. Exits: {', '.join(self._exits())}.{item}{hint}"
        )

    def anchor(self) -> tuple[int, str, bool, bool]:
        """``(task_id, room, has_key, located)``: the state but for the compass count (module docstring)."""
        return (int(self.task_id), self._room(self._pos), self._has_key, self._located)

    def admissible_actions(self) -> list[str]:
        take = ["take key"] if self._pos == self._key and not self._has_key else []
        return [*(f"go {d}" for d in self._exits()), *take, COMPASS_CALL]

    def compass(self) -> str:
        """Where the current goal (the key, or the treasure room once the key is carried) is from here."""
        target, name = (self._goal, "treasure") if self._has_key else (self._key, "key")
        return f"The {name} is {displacement(self._pos, target)}."

    # ---- actions ----------------------------------------------------------------------------
    def _step(self, action: str) -> StepOutcome:
        if "<tool_call>" in action:
            return self._tool(action)
        words = action.strip().lower().rstrip(".").split()
        if len(words) == 1 and words[0] in DIRECTIONS:
            words = ["go", words[0]]
        if words == ["take", "key"]:
            return self._take()
        if len(words) != 2 or words[0] != "go" or words[1] not in DIRECTIONS:
            return StepOutcome(
                self._describe(
                    f"I don't understand {action.strip()[:80]!r}; say 'go <direction>', 'take key' "
                    "or call the compass. "
                ),
                invalid_action=True,
            )
        return self._go(words[1])

    def _tool(self, action: str) -> StepOutcome:
        parsed = parse_tool_calls(action, "hermes")
        if not parsed.ok:
            reason = parsed.errors[0].message if parsed.errors else "no tool call found"
            return StepOutcome(
                self._describe(f"Invalid tool call: {reason}. "), invalid_action=True, parse_error=True
            )
        call = parsed.calls[0]
        try:
            result = self._toolbox.call(call.name, call.arguments)
        except (ToolNotFound, ToolArgumentError) as exc:
            return StepOutcome(self._describe(f"Invalid tool call: {exc}. "), invalid_action=True)
        self._calls += 1
        self._located = True
        return StepOutcome(
            self._describe(f"Result: {result.as_text()} ", where=False),
            metrics={"tool_calls": float(self._calls)},
        )

    def _take(self) -> StepOutcome:
        if self._has_key:
            return StepOutcome(self._describe("You already carry the key. "), invalid_action=True)
        if self._pos != self._key:
            return StepOutcome(self._describe("There is no key here. "), invalid_action=True)
        self._has_key, self._located = True, False
        return StepOutcome(self._describe("You take the key. "))

    def _go(self, direction: str) -> StepOutcome:
        if direction not in self._exits():
            return StepOutcome(self._describe(f"You can't go {direction} from here. "), invalid_action=True)
        dr, dc = DIRECTIONS[direction]
        nxt = (self._pos[0] + dr, self._pos[1] + dc)
        if nxt == self._goal and not self._has_key:
            return StepOutcome(self._describe(f"The door to the {self._room(nxt)} is locked. "))
        self._pos = nxt
        if nxt == self._goal:
            reward = max(0.0, 1.0 - self.tool_cost * self._calls)
            return StepOutcome(
                f"You unlock the {self._room(nxt)} and find the treasure!",
                reward=reward,
                terminated=True,
                won=True,
            )
        return StepOutcome(self._describe(""))

    # ---- solver -----------------------------------------------------------------------------
    def expert_action(self) -> str:
        """Take the key in its room, else the compass while the goal is not located, else walk on."""
        if self._pos == self._key and not self._has_key:
            return "take key"
        if not self._located:
            return COMPASS_CALL
        return f"go {self._first_step(self._goal if self._has_key else self._key)}"

    def _first_step(self, target: Cell) -> str:
        """First direction of a shortest path to ``target`` (breadth-first search from it; the
        treasure room is passable only with the key, the target itself always)."""
        previous: dict[Cell, str | None] = {target: None}
        queue = deque([target])
        while queue:
            cell = queue.popleft()
            for d, (dr, dc) in DIRECTIONS.items():
                nxt = (cell[0] - dr, cell[1] - dc)
                blocked = nxt == self._goal and not self._has_key
                if nxt not in previous and frozenset((cell, nxt)) in self._doors and not blocked:
                    previous[nxt] = d
                    queue.append(nxt)
        step = previous.get(self._pos)
        assert step is not None, "the key and the treasure are reachable from every room but the locked one"
        return step
