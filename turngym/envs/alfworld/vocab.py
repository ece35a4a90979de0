"""ALFWorld's vocabularies: receptacle and object types, what fits where, and the six task types.

Everything here follows ALFWorld's constants (``alfworld/gen/constants.py``: the receptacle and
object lists, ``VAL_RECEPTACLE_OBJECTS`` for which object type a receptacle type can hold, the
openable/heatable/coolable/cleanable/toggleable sets and ``GOALS_VALID`` for which room kind each
task type may be generated in) as summarised in the project's research note, environments.md §2.
Type names are the lowercase ALFWorld names an agent sees ("sinkbasin", "desklamp"); objects that
ALFRED also treats as movable receptacles (bowl, cup, mug, plate, pan, pot, box) are plain objects
here, as in ALFWorld's text games, where "movable receptacle" trials are skipped.

Room kinds list their receptacle types with an inclusive count range (the receptacle set of one
generated household); a lamp type is the light source of ``look_at_obj_in_light`` tasks in that
room.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

SMALL = (
    "alarmclock apple baseballbat basketball book bowl box bread butterknife cd candle cellphone cloth "
    "creditcard cup dishsponge egg fork glassbottle handtowel kettle keychain knife ladle laptop lettuce "
    "mug newspaper pan papertowel pen pencil peppershaker plate pot potato remotecontrol saltshaker soapbar "
    "soapbottle spatula spoon spraybottle statue tennisracket tissuebox toiletpaper tomato vase watch "
    "wateringcan winebottle"
).split()
"""Object types that fit on tables and countertops (ALFWorld's list for CounterTop/DiningTable)."""

KITCHEN_SMALL = (
    "apple bowl bread butterknife cup dishsponge egg fork glassbottle kettle knife ladle lettuce mug pan "
    "peppershaker plate pot potato saltshaker soapbottle spatula spoon tomato winebottle"
).split()
OFFICE_SMALL = (
    "alarmclock book bowl box cd candle cellphone creditcard cup keychain laptop mug newspaper pen pencil "
    "plate remotecontrol statue tissuebox vase watch"
).split()
BATH_SMALL = (
    "candle cloth dishsponge handtowel papertowel soapbar soapbottle spraybottle tissuebox toiletpaper"
).split()

CAN_CONTAIN: dict[str, frozenset[str]] = {
    "countertop": frozenset(SMALL),
    "diningtable": frozenset(SMALL),
    "coffeetable": frozenset(SMALL),
    "sidetable": frozenset(SMALL),
    "fridge": frozenset(
        "apple bowl bread cup egg glassbottle lettuce mug pan plate pot potato tomato winebottle".split()
    ),
    "microwave": frozenset("apple bowl bread cup egg glassbottle mug plate potato tomato".split()),
    "sinkbasin": frozenset(
        (
            "apple bowl butterknife cloth cup dishsponge egg fork glassbottle handtowel kettle knife ladle "
            "lettuce mug pan plate pot potato soapbar spatula spoon tomato"
        ).split()
    ),
    "stoveburner": frozenset("kettle pan pot".split()),
    "coffeemachine": frozenset({"mug"}),
    "cabinet": frozenset(
        (
            "book bowl box cd candle cloth cup dishsponge glassbottle handtowel kettle ladle mug newspaper "
            "pan peppershaker plate pot saltshaker soapbar soapbottle spraybottle tissuebox toiletpaper "
            "vase wateringcan winebottle"
        ).split()
    ),
    "drawer": frozenset(
        (
            "book butterknife cd candle cellphone cloth creditcard dishsponge fork handtowel keychain knife "
            "ladle newspaper pen pencil peppershaker remotecontrol saltshaker soapbar soapbottle spatula "
            "spoon spraybottle tissuebox toiletpaper watch wateringcan"
        ).split()
    ),
    "shelf": frozenset(
        OFFICE_SMALL + "glassbottle kettle peppershaker saltshaker soapbottle spraybottle".split()
    ),
    "garbagecan": frozenset(
        (
            "apple bread cd cloth dishsponge egg handtowel lettuce newspaper papertowel pen pencil potato "
            "soapbar soapbottle spraybottle tissuebox toiletpaper tomato winebottle"
        ).split()
    ),
    "sofa": frozenset(
        "basketball book box cellphone cloth creditcard keychain laptop newspaper remotecontrol".split()
    ),
    "armchair": frozenset(
        "basketball book box cellphone cloth creditcard keychain laptop newspaper remotecontrol".split()
    ),
    "ottoman": frozenset(
        "basketball book box cellphone cloth creditcard keychain laptop newspaper remotecontrol".split()
    ),
    "bed": frozenset("baseballbat basketball book cellphone laptop newspaper tennisracket".split()),
    "desk": frozenset(OFFICE_SMALL + "baseballbat basketball tennisracket".split()),
    "dresser": frozenset(OFFICE_SMALL + "baseballbat basketball tennisracket".split()),
    "safe": frozenset("cd cellphone creditcard keychain statue vase watch".split()),
    "toilet": frozenset(BATH_SMALL),
    "cart": frozenset(BATH_SMALL + "spraybottle".split()),
    "bathtubbasin": frozenset("cloth dishsponge handtowel soapbar".split()),
    "handtowelholder": frozenset({"handtowel"}),
    "toiletpaperhanger": frozenset({"toiletpaper"}),
    "laundryhamper": frozenset({"cloth"}),
    "tvstand": frozenset({"tissuebox"}),
    "towelholder": frozenset({"towel"}),
    "toaster": frozenset(),
}
"""Receptacle type -> the object types it can hold (the ``canContain`` facts of a game)."""

OPENABLE = frozenset({"fridge", "cabinet", "microwave", "drawer", "safe"})
HEATABLE = frozenset("apple bread cup egg mug plate potato tomato".split())
COOLABLE = frozenset("apple bowl bread cup egg lettuce mug pan plate pot potato tomato winebottle".split())
CLEANABLE = frozenset(
    (
        "apple bowl butterknife cloth cup dishsponge egg fork kettle knife ladle lettuce mug pan plate pot "
        "potato soapbar spatula spoon tomato"
    ).split()
)
SLICEABLE = frozenset("apple bread egg lettuce potato tomato".split())
KNIVES = frozenset({"knife", "butterknife"})
RECEPTACLE_OBJECTS = frozenset("bowl box cup mug pan plate pot".split())
"""Objects ALFRED marks ``isReceptacleObject``: ``examine`` describes them as "a normal ..."."""
LAMPS = ("desklamp", "floorlamp")
LAMP_HOSTS = {"desklamp": ("desk", "sidetable", "dresser"), "floorlamp": ("sidetable", "dresser", "desk")}
"""Receptacle types a lamp stands in (a lamp must be in a receptacle for ``use`` to apply)."""


@dataclass(frozen=True)
class RoomKind:
    """One of ALFRED's four scene kinds: its receptacles (type, min count, max count) and lamp."""

    name: str
    receptacles: tuple[tuple[str, int, int], ...]
    lamp: str | None


ROOMS: dict[str, RoomKind] = {
    "kitchen": RoomKind(
        "kitchen",
        (
            ("cabinet", 4, 14), ("coffeemachine", 1, 1), ("countertop", 1, 3), ("diningtable", 0, 1),
            ("drawer", 1, 6), ("fridge", 1, 1), ("garbagecan", 1, 1), ("microwave", 1, 1),
            ("shelf", 0, 3), ("sinkbasin", 1, 2), ("stoveburner", 2, 4), ("toaster", 1, 1),
        ),
        None,
    ),
    "livingroom": RoomKind(
        "livingroom",
        (
            ("armchair", 0, 2), ("cabinet", 0, 4), ("coffeetable", 1, 1), ("diningtable", 0, 1),
            ("drawer", 0, 4), ("dresser", 0, 1), ("garbagecan", 1, 1), ("ottoman", 0, 1),
            ("shelf", 0, 6), ("sidetable", 1, 2), ("sofa", 1, 1), ("tvstand", 0, 1),
        ),
        "floorlamp",
    ),
    "bedroom": RoomKind(
        "bedroom",
        (
            ("bed", 1, 1), ("desk", 0, 1), ("drawer", 1, 6), ("dresser", 0, 1), ("garbagecan", 1, 1),
            ("laundryhamper", 0, 1), ("safe", 0, 1), ("shelf", 0, 6), ("sidetable", 1, 2),
        ),
        "desklamp",
    ),
    "bathroom": RoomKind(
        "bathroom",
        (
            ("bathtubbasin", 0, 1), ("cabinet", 1, 4), ("cart", 0, 1), ("countertop", 1, 1),
            ("drawer", 0, 4), ("garbagecan", 1, 1), ("handtowelholder", 0, 2), ("sinkbasin", 1, 2),
            ("toilet", 1, 1), ("toiletpaperhanger", 1, 1), ("towelholder", 0, 1),
        ),
        None,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class TaskType:
    """One of ALFWorld's six task types: id, name, goal templates and the rooms it is valid in."""

    id: int
    name: str
    short: str
    templates: tuple[str, ...]
    rooms: tuple[str, ...]
    weight: int
    """Relative frequency in ALFWorld's train split (so generated splits have a similar mix)."""


TASK_TYPES: tuple[TaskType, ...] = (
    TaskType(1, "pick_and_place_simple", "pick", ("put a {obj} in {recep}", "put some {obj} on {recep}"),
             ("kitchen", "livingroom", "bathroom", "bedroom"), 790),
    TaskType(2, "look_at_obj_in_light", "look",
             ("look at {obj} under the {toggle}", "examine the {obj} with the {toggle}"),
             ("livingroom", "bedroom"), 308),
    TaskType(3, "pick_clean_then_place_in_recep", "clean",
             ("put a clean {obj} in {recep}", "clean some {obj} and put it in {recep}"),
             ("kitchen", "bathroom"), 650),
    TaskType(4, "pick_heat_then_place_in_recep", "heat",
             ("put a hot {obj} in {recep}", "heat some {obj} and put it in {recep}"), ("kitchen",), 459),
    TaskType(5, "pick_cool_then_place_in_recep", "cool",
             ("put a cool {obj} in {recep}", "cool some {obj} and put it in {recep}"), ("kitchen",), 533),
    TaskType(6, "pick_two_obj_and_place", "pick2",
             ("put two {obj} in {recep}", "find two {obj} and put them in {recep}"),
             ("kitchen", "livingroom", "bathroom", "bedroom"), 813),
)  # fmt: skip
TASK_BY_ID = {t.id: t for t in TASK_TYPES}
TRANSFORM = {3: ("clean", "sinkbasin", CLEANABLE), 4: ("heat", "microwave", HEATABLE),
             5: ("cool", "fridge", COOLABLE)}  # fmt: skip
"""Task id -> (verb, appliance receptacle type, object types the verb applies to)."""


ROOM_OBJECTS: dict[str, frozenset[str]] = {
    "kitchen": frozenset(KITCHEN_SMALL + "cellphone creditcard papertowel vase statue book".split()),
    "livingroom": frozenset(OFFICE_SMALL + "basketball cloth tissuebox wateringcan".split()),
    "bedroom": frozenset(OFFICE_SMALL + "baseballbat basketball cloth tennisracket".split()),
    "bathroom": frozenset(BATH_SMALL + "cloth towel".split()),
}
"""Object types found in each room kind (ALFRED scenes' typical contents)."""


@functools.cache
def objects_for_room(room: str) -> tuple[str, ...]:
    """Object types of ``room`` that fit some receptacle type of the room (sorted)."""
    kinds = {r for r, _, high in ROOMS[room].receptacles if high > 0}
    return tuple(sorted({o for r in kinds for o in CAN_CONTAIN[r]} & ROOM_OBJECTS[room]))
