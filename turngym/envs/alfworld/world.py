"""Generated ALFWorld households: the :class:`Household` record and its generator.

A task is fully defined by ``(split, index)``: :func:`generate` seeds Python's ``random.Random``
with the string ``"alfworld/<split>/<index>"`` (string seeding is stable across Python versions)
and draws, in order, a *combination* ``(task type, object type, goal receptacle or lamp type,
room kind)`` of the split, a receptacle layout for the room, the target objects, the lamp (rooms
with one) and distractor objects, each placed in a receptacle whose type can hold it.

Splits (:data:`SPLITS`) follow ALFWorld's sizes. Every valid combination is assigned once, by a
stable hash, to one of three classes: *seen* (about 80 %, used by ``train`` and ``valid_seen``),
*unseen-valid* (``valid_unseen``) and *unseen-test* (``test``); so the unseen splits hold only
object-receptacle-room combinations that never occur in training, as ALFWorld's out-of-distribution
split does. ``train`` and ``valid_seen`` share combinations but draw from separate seed streams.

Generation rules (ALFWorld's, research note §2): the goal may not hold at the start (no target
object starts in a goal-type receptacle), every target object also fits a receptacle of another
type, heat/cool/clean tasks need the microwave/fridge/sinkbasin, ``look`` tasks need the room's
lamp, ``pick2`` has two or three target instances, other tasks one to three; at most three
instances of any type (ALFRED's ``MAX_NUM_OF_OBJ_INSTANCES``); openable receptacles start closed.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass

from turngym.envs.alfworld.vocab import (
    CAN_CONTAIN,
    LAMP_HOSTS,
    ROOMS,
    TASK_BY_ID,
    TASK_TYPES,
    TRANSFORM,
    objects_for_room,
)
from turngym.errors import ConfigError

SPLITS = {"train": 3553, "valid_seen": 140, "valid_unseen": 134, "test": 134}
"""Split name -> default number of tasks (ALFWorld's train/valid sizes; test as valid_unseen)."""
SPLIT_CLASS = {"train": "seen", "valid_seen": "seen", "valid_unseen": "unseen_valid", "test": "unseen_test"}
MAX_INSTANCES = 3

Combo = tuple[int, str, str, str]
"""(task type id, object type, goal receptacle type or lamp type, room kind)."""


@dataclass(frozen=True)
class Household:
    """One generated task: the room's receptacles and objects, where each object starts, the goal."""

    split: str
    index: int
    room: str
    task_type: int
    obj: str
    target: str
    """Goal receptacle type (task types 1, 3-6) or lamp type (task type 2)."""
    goal: str
    """The task sentence after ``Your task is to: `` (without the final period)."""
    receptacles: tuple[str, ...]
    """Receptacle names ("cabinet 1"), grouped by type in alphabetical order, numbered from 1."""
    objects: tuple[str, ...]
    """Object names ("apple 1"), in the same order."""
    placement: tuple[int, ...]
    """For each object, the index of the receptacle it starts in."""

    def __hash__(self) -> int:
        # equal households have equal (split, index, goal, placement); hashing every name is slow
        return hash((self.split, self.index, self.goal, self.placement))

    @property
    def combo(self) -> Combo:
        return (self.task_type, self.obj, self.target, self.room)


def type_of(name: str) -> str:
    """``"cabinet 12"`` -> ``"cabinet"``."""
    return name.rsplit(" ", 1)[0]


def combo_class(combo: Combo) -> str:
    """The split class of a combination, from a stable hash: ``seen``, ``unseen_valid``, ``unseen_test``."""
    bucket = int(hashlib.sha256(repr(combo).encode()).hexdigest(), 16) % 10
    return {0: "unseen_valid", 1: "unseen_test"}.get(bucket, "seen")


def _sources(obj: str, room: str, goal_type: str) -> list[str]:
    kinds = [r for r, _, high in ROOMS[room].receptacles if high > 0]
    return [r for r in kinds if r != goal_type and obj in CAN_CONTAIN[r]]


@functools.lru_cache(maxsize=1)
def all_combos() -> tuple[Combo, ...]:
    """Every valid combination of task type, object, goal receptacle (or lamp) and room (sorted)."""
    combos: list[Combo] = []
    for task in TASK_TYPES:
        for room in task.rooms:
            kinds = [r for r, _, high in ROOMS[room].receptacles if high > 0]
            for obj in objects_for_room(room):
                if task.id == 2:
                    lamp = ROOMS[room].lamp
                    if lamp is not None and _sources(obj, room, ""):
                        combos.append((2, obj, lamp, room))
                    continue
                appliance = TRANSFORM[task.id][1] if task.id in TRANSFORM else None
                if task.id in TRANSFORM and (obj not in TRANSFORM[task.id][2] or appliance not in kinds):
                    continue
                for recep in kinds:
                    if recep != appliance and obj in CAN_CONTAIN[recep] and _sources(obj, room, recep):
                        combos.append((task.id, obj, recep, room))
    return tuple(sorted(combos))


@functools.lru_cache(maxsize=16)
def combos_for(split: str, task_types: tuple[int, ...]) -> tuple[Combo, ...]:
    """The combinations a split draws from, restricted to ``task_types``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown ALFWorld split {split!r}; expected one of {sorted(SPLITS)}")
    bad = [t for t in task_types if t not in TASK_BY_ID]
    if bad or not task_types:
        raise ConfigError(f"task_types must be a non-empty subset of 1..6, got {list(task_types)}")
    wanted = SPLIT_CLASS[split]
    return tuple(c for c in all_combos() if c[0] in task_types and combo_class(c) == wanted)


@functools.lru_cache(maxsize=16)
def _combos_by_type(split: str, task_types: tuple[int, ...]) -> dict[int, list[Combo]]:
    by_type: dict[int, list[Combo]] = {}
    for c in combos_for(split, task_types):
        by_type.setdefault(c[0], []).append(c)
    return by_type


@functools.lru_cache(maxsize=8192)
def generate(split: str, index: int, task_types: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> Household:
    """Task ``index`` of ``split`` (deterministic; any non-negative index is a valid task).

    Results are cached (a :class:`Household` is immutable), so resetting to a task again is cheap.
    """
    if index < 0:
        raise ConfigError(f"task index must be >= 0, got {index}")
    types = tuple(sorted(set(task_types)))
    by_type = _combos_by_type(split, types)
    rng = random.Random(f"alfworld/{split}/{index}/{','.join(map(str, types))}")
    kinds = sorted(by_type)
    task_id = rng.choices(kinds, weights=[TASK_BY_ID[k].weight for k in kinds])[0]
    task_id, obj, target, room = rng.choice(by_type[task_id])
    goal_type = "" if task_id == 2 else target

    counts = {r: rng.randint(low, high) for r, low, high in ROOMS[room].receptacles}
    required = [rng.choice(_sources(obj, room, goal_type))]
    if task_id != 2:
        required.append(target)
    if task_id in TRANSFORM:
        required.append(TRANSFORM[task_id][1])
    lamp = ROOMS[room].lamp
    lamp_host = ""
    if lamp is not None:
        lamp_host = rng.choice([h for h in LAMP_HOSTS[lamp] if counts.get(h, -1) >= 0])
        required.append(lamp_host)
    for r in required:
        counts[r] = max(counts[r], 1)
    receptacles = [f"{r} {i}" for r in sorted(counts) for i in range(1, counts[r] + 1)]
    rtypes = [type_of(r) for r in receptacles]

    placed: list[tuple[str, int]] = []
    n_target = rng.randint(2, 3) if task_id == 6 else rng.randint(1, 3)
    homes = [i for i, t in enumerate(rtypes) if t != goal_type and obj in CAN_CONTAIN[t]]
    placed += [(obj, rng.choice(homes)) for _ in range(n_target)]
    if lamp is not None:
        placed.append((lamp, rng.choice([i for i, t in enumerate(rtypes) if t == lamp_host])))
    present = set(rtypes)
    pool = [o for o in objects_for_room(room) if o != obj and any(o in CAN_CONTAIN[t] for t in present)]
    per_type: dict[str, int] = {}
    for _ in range(rng.randint(6, 20)):
        kind = rng.choice(pool)
        if per_type.get(kind, 0) >= MAX_INSTANCES:
            continue
        per_type[kind] = per_type.get(kind, 0) + 1
        placed.append((kind, rng.choice([i for i, t in enumerate(rtypes) if kind in CAN_CONTAIN[t]])))
    placed.sort(key=lambda p: p[0])
    numbering: dict[str, int] = {}
    objects: list[str] = []
    for kind, _ in placed:
        numbering[kind] = numbering.get(kind, 0) + 1
        objects.append(f"{kind} {numbering[kind]}")
    template = rng.choice(TASK_BY_ID[task_id].templates)
    goal = template.format(obj=obj, recep=target, toggle=target)
    return Household(
        split=split,
        index=index,
        room=room,
        task_type=task_id,
        obj=obj,
        target=target,
        goal=goal,
        receptacles=tuple(receptacles),
        objects=tuple(objects),
        placement=tuple(p for _, p in placed),
    )


__all__ = ["SPLITS", "Household", "all_combos", "combo_class", "combos_for", "generate", "type_of"]
