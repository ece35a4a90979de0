"""Export a generated household as a real ALFWorld game file (``game.tw-pddl``).

The file is the JSON ALFWorld's text engine loads (research note §2.2): ``pddl_domain`` (ALFWorld's
``alfred.pddl``), ``grammar`` (``alfred.twl2`` with ``UNKNOWN GOAL`` replaced by the task
sentence), ``pddl_problem`` (written here), ``solvable`` and ``walkthrough`` (our expert's
commands). The domain and grammar are read from the installed ``alfworld`` package, so exporting
needs it; the problem text itself needs nothing.

PDDL ids are chosen so that ALFWorld's name demangler (ids split on ``_bar_``; ids containing
``basin`` get ``basin`` appended to the type; within a type the ids, sorted, are numbered from the
highest number down) gives back exactly our names: ``cabinet 3`` of 5 is ``cabinet_bar_02``,
``sinkbasin 1`` of 1 is ``sink_bar_00_basin``. Each receptacle stands at its own location; the
agent starts at a location with none ("the middle of a room"). Objects carry ALFRED's properties
(``pickupable``, ``heatable``, ``coolable``, ``cleanable``, ``sliceable``, ``toggleable``,
``isReceptacleObject``) and ``canContain`` lists every type pair of the household that fits.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from turngym.envs.alfworld.expert import expert_command
from turngym.envs.alfworld.sim import Simulator
from turngym.envs.alfworld.vocab import (
    CAN_CONTAIN,
    CLEANABLE,
    COOLABLE,
    HEATABLE,
    LAMPS,
    OPENABLE,
    RECEPTACLE_OBJECTS,
    SLICEABLE,
    TASK_BY_ID,
)
from turngym.envs.alfworld.world import Household, type_of
from turngym.errors import ConfigError

PDDL_TYPE = {"sinkbasin": "SinkBasin", "bathtubbasin": "BathtubBasin"}


def pddl_id(name: str, count: int) -> str:
    """The PDDL id that ALFWorld's demangler turns back into ``name`` (one of ``count`` of its type)."""
    kind, number = name.rsplit(" ", 1)
    rank = count - int(number)
    if kind.endswith("basin"):
        return f"{kind[: -len('basin')]}_bar_{rank:02d}_basin"
    return f"{kind}_bar_{rank:02d}"


def type_const(kind: str, suffix: str) -> str:
    """``sinkbasin`` -> ``SinkBasinType`` style constants of the domain (only SinkBasin, Microwave,
    Fridge and the knives are named by the domain itself; the others only need to be consistent)."""
    special = {"sinkbasin": "SinkBasin", "microwave": "Microwave", "fridge": "Fridge", "knife": "Knife",
               "butterknife": "ButterKnife", "desklamp": "DeskLamp", "floorlamp": "FloorLamp"}  # fmt: skip
    return special.get(kind, kind.capitalize()) + suffix


def _ids(names: tuple[str, ...]) -> list[str]:
    counts: dict[str, int] = {}
    for n in names:
        counts[type_of(n)] = counts.get(type_of(n), 0) + 1
    return [pddl_id(n, counts[type_of(n)]) for n in names]


def _goal(house: Household) -> str:
    obj, target = type_const(house.obj, "Type"), type_const(house.target, "Type")
    if house.task_type == 2:
        return (
            "(and (exists (?ot - object ?r - receptacle ?a - agent ?l - location) (and "
            f"(objectType ?ot {target}) (toggleable ?ot) (isToggled ?ot) (inReceptacle ?ot ?r) "
            "(receptacleAtLocation ?r ?l) (atLocation ?a ?l))) "
            f"(exists (?o - object ?a - agent) (and (objectType ?o {obj}) (holds ?a ?o))))"
        )
    if house.task_type == 6:
        return (
            "(exists (?r - receptacle ?o1 - object ?o2 - object) (and "
            f"(receptacleType ?r {target}) (objectType ?o1 {obj}) (objectType ?o2 {obj}) "
            "(not (= ?o1 ?o2)) (inReceptacle ?o1 ?r) (inReceptacle ?o2 ?r)))"
        )
    state = {3: "(isClean ?o) ", 4: "(isHot ?o) ", 5: "(isCool ?o) "}.get(house.task_type, "")
    return (
        "(exists (?r - receptacle ?o - object) (and "
        f"(receptacleType ?r {target}) (objectType ?o {obj}) {state}(inReceptacle ?o ?r)))"
    )


def pddl_problem(house: Household) -> str:
    """The PDDL problem of ``house`` for ALFWorld's domain."""
    rids, oids = _ids(house.receptacles), _ids(house.objects)
    rtypes = [type_of(r) for r in house.receptacles]
    otypes = [type_of(o) for o in house.objects]
    locs = [f"loc_bar_{i:02d}" for i in range(len(rids))]
    start = "loc_bar_start"
    rkinds, okinds = sorted(set(rtypes)), sorted(set(otypes))
    objects = [
        "agent1 - agent",
        *(f"{loc} - location" for loc in [start, *locs]),
        *(f"{r} - receptacle" for r in rids),
        *(f"{o} - object" for o in oids),
        *(f"{type_const(k, 'Type')} - rtype" for k in rkinds),
        *(f"{type_const(k, 'Type')} - otype" for k in okinds),
    ]
    init = [f"(atLocation agent1 {start})"]
    for r, (rid, kind) in enumerate(zip(rids, rtypes, strict=True)):
        init.append(f"(receptacleAtLocation {rid} {locs[r]})")
        init.append(f"(receptacleType {rid} {type_const(kind, 'Type')})")
        if kind in OPENABLE:
            init.append(f"(openable {rid})")
    for oid, kind, r in zip(oids, otypes, house.placement, strict=True):
        init += [
            f"(inReceptacle {oid} {rids[r]})",
            f"(objectAtLocation {oid} {locs[r]})",
            f"(objectType {oid} {type_const(kind, 'Type')})",
        ]
        props = [
            ("pickupable", kind not in LAMPS),
            ("toggleable", kind in LAMPS),
            ("heatable", kind in HEATABLE),
            ("coolable", kind in COOLABLE),
            ("cleanable", kind in CLEANABLE),
            ("sliceable", kind in SLICEABLE),
            ("isReceptacleObject", kind in RECEPTACLE_OBJECTS),
        ]
        init += [f"({p} {oid})" for p, holds in props if holds]
    for rk in rkinds:
        init += [
            f"(canContain {type_const(rk, 'Type')} {type_const(ok, 'Type')})"
            for ok in okinds
            if ok in CAN_CONTAIN[rk]
        ]
    body = "\n    ".join(objects)
    facts = "\n    ".join(init)
    return (
        f"(define (problem turngym_{house.split}_{house.index})\n(:domain alfred)\n"
        f"(:objects\n    {body}\n)\n(:init\n    {facts}\n)\n(:goal {_goal(house)})\n)\n"
    )


def alfworld_data(name: str) -> str:
    """The text of ``alfworld/data/<name>`` (``alfred.pddl`` or ``alfred.twl2``)."""
    try:
        return importlib.resources.files("alfworld").joinpath("data", name).read_text()
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"exporting ALFWorld games needs the alfworld package for {name}; "
            "install it with `pip install -e .[alfworld]`"
        ) from exc


def walkthrough(house: Household) -> list[str]:
    """Our expert's commands for ``house`` from the start to the goal."""
    sim = Simulator(house)
    commands: list[str] = []
    while not sim.won():
        command = expert_command(sim)
        sim.execute(command)
        commands.append(command)
    return commands


def game_json(house: Household) -> dict[str, object]:
    """The ``game.tw-pddl`` content of ``house``."""
    grammar = alfworld_data("alfred.twl2").replace("UNKNOWN GOAL", house.goal)
    return {
        "pddl_domain": alfworld_data("alfred.pddl"),
        "grammar": grammar,
        "pddl_problem": pddl_problem(house),
        "solvable": True,
        "walkthrough": walkthrough(house),
    }


def task_folder(house: Household) -> str:
    """The folder name of an exported task: ``<split>-<index>-<task type>-<obj>-<target>-<room>``."""
    kind = TASK_BY_ID[house.task_type].name
    return f"{house.split}-{house.index:05d}-{kind}-{house.obj}-{house.target}-{house.room}"


def export_game(house: Household, directory: str | Path) -> Path:
    """Write ``<directory>/<task folder>/game.tw-pddl`` for ``house``; returns the file's path."""
    folder = Path(directory) / task_folder(house)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "game.tw-pddl"
    path.write_text(json.dumps(game_json(house)))
    return path
