"""The exporter's PDDL problem and ids (the real-engine runs are in tests/integration/alfworld)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from turngym.envs.alfworld.export import pddl_id, pddl_problem, task_folder, walkthrough
from turngym.envs.alfworld.world import Household, generate

HOUSE = Household(
    split="train",
    index=3,
    room="kitchen",
    task_type=3,
    obj="apple",
    target="countertop",
    goal="put a clean apple in countertop",
    receptacles=("cabinet 1", "cabinet 2", "countertop 1", "sinkbasin 1"),
    objects=("apple 1", "mug 1"),
    placement=(0, 1),
)


def test_ids_sort_so_that_alfworld_numbers_them_back() -> None:
    assert [pddl_id(f"cabinet {k}", 3) for k in (1, 2, 3)] == [
        "cabinet_bar_02",
        "cabinet_bar_01",
        "cabinet_bar_00",
    ]
    assert pddl_id("sinkbasin 1", 2) == "sink_bar_01_basin"
    assert pddl_id("bathtubbasin 1", 1) == "bathtub_bar_00_basin"


def test_alfworlds_demangler_recovers_every_name() -> None:
    misc = pytest.importorskip("alfworld.agents.utils.misc")

    @dataclass
    class Info:
        id: str

    house = generate("train", 11)
    names = {}
    for group in (house.receptacles, house.objects):
        counts: dict[str, int] = {}
        for n in group:
            counts[n.rsplit(" ", 1)[0]] = counts.get(n.rsplit(" ", 1)[0], 0) + 1
        names.update({pddl_id(n, counts[n.rsplit(" ", 1)[0]]): n for n in group})
    demangler = misc.Demangler(game_infos={i: Info(i) for i in names})
    assert {i: demangler.demangle_alfred_name(i) for i in names} == names


def test_problem_text_holds_the_facts_of_the_household() -> None:
    text = pddl_problem(HOUSE)
    assert text.startswith(
        "(define (problem turngym_train_3)\n(:domain alfred)\n(:objects\n    agent1 - agent\n"
    )
    for fact in (
        "(atLocation agent1 loc_bar_start)",
        "(receptacleAtLocation cabinet_bar_01 loc_bar_00)",
        "(openable cabinet_bar_01)",
        "(receptacleType sink_bar_00_basin SinkBasinType)",
        "(inReceptacle apple_bar_00 cabinet_bar_01)",
        "(objectAtLocation apple_bar_00 loc_bar_00)",
        "(cleanable apple_bar_00)",
        "(heatable apple_bar_00)",
        "(sliceable apple_bar_00)",
        "(isReceptacleObject mug_bar_00)",
        "(canContain CountertopType AppleType)",
        "(canContain SinkBasinType MugType)",
    ):
        assert fact in text, fact
    assert "(openable countertop_bar_00)" not in text
    assert "(canContain CabinetType AppleType)" not in text  # cabinets hold no apples in ALFWorld
    assert text.endswith(
        "(:goal (exists (?r - receptacle ?o - object) (and (receptacleType ?r CountertopType) "
        "(objectType ?o AppleType) (isClean ?o) (inReceptacle ?o ?r))))\n)\n"
    )


def test_walkthrough_and_folder_name() -> None:
    assert walkthrough(HOUSE) == [
        "go to cabinet 1",
        "open cabinet 1",
        "take apple 1 from cabinet 1",
        "go to sinkbasin 1",
        "clean apple 1 with sinkbasin 1",
        "go to countertop 1",
        "move apple 1 to countertop 1",
    ]
    assert task_folder(HOUSE) == "train-00003-pick_clean_then_place_in_recep-apple-countertop-kitchen"
