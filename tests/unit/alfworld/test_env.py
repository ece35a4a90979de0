"""``turngym/ALFWorld-v0``: golden texts, rewards, anchors, limits and bad input."""

from __future__ import annotations

import pytest

import turngym
from turngym.envs.alfworld.env import ALFWorldEnv
from turngym.errors import ConfigError

GOLDEN_RESET = (
    "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
    "you see a cabinet 13, a cabinet 12, a cabinet 11, a cabinet 10, a cabinet 9, a cabinet 8, a cabinet 7, "
    "a cabinet 6, a cabinet 5, a cabinet 4, a cabinet 3, a cabinet 2, a cabinet 1, a coffeemachine 1, "
    "a countertop 1, a diningtable 1, a drawer 3, a drawer 2, a drawer 1, a fridge 1, a garbagecan 1, "
    "a microwave 1, a shelf 2, a shelf 1, a sinkbasin 1, a stoveburner 4, a stoveburner 3, a stoveburner 2, "
    "a stoveburner 1, and a toaster 1.\n\nYour task is to: put a hot mug in diningtable."
)
GOLDEN_STEPS = [
    ("go to microwave 1", "You arrive at microwave 1. The microwave 1 is closed.", 0.0),
    (
        "open microwave 1",
        "You open the microwave 1. The microwave 1 is open. In it, you see a potato 1.",
        0.0,
    ),
    ("take mug 1 from coffeemachine 1", "Nothing happens.", 0.0),
    ("go to coffeemachine 1", "You arrive at coffeemachine 1. On the coffeemachine 1, you see a mug 1.", 0.0),
    ("take mug 1 from coffeemachine 1", "You pick up the mug 1 from the coffeemachine 1.", 0.0),
    ("inventory", "You are carrying: a mug 1.", 0.0),
    (
        "go to microwave 1",
        "You arrive at microwave 1. The microwave 1 is open. In it, you see a potato 1.",
        0.0,
    ),
    ("heat mug 1 with microwave 1", "You heat the mug 1 using the microwave 1.", 0.0),
    ("go to diningtable 1", "You arrive at diningtable 1. On the diningtable 1, you see nothing.", 0.0),
    ("put mug 1 on diningtable 1", "You move the mug 1 to the diningtable 1.", 10.0),
]


def test_golden_reset_and_commands_for_a_fixed_task() -> None:
    env = turngym.make("turngym/ALFWorld-v0", split="valid_seen")
    obs, info = env.reset(seed=0, options={"task_id": 5})
    assert obs == GOLDEN_RESET
    assert info["anchor"] == GOLDEN_RESET
    assert "go to diningtable 1" in info["admissible_actions"]
    for action, text, reward in GOLDEN_STEPS:
        obs, r, terminated, truncated, info = env.step(action)
        assert (obs, r) == (text, reward), action
        assert info["invalid_action"] is (text == "Nothing happens.")
    assert terminated and info["won"] and not truncated
    assert info["metrics"]["invalid_actions"] == 1.0


def test_golden_look_task_with_the_expert() -> None:
    env = ALFWorldEnv(split="valid_seen")
    env.reset(seed=0, options={"task_id": 0})
    played = []
    while True:
        action = env.expert_action()
        obs, reward, terminated, _, info = env.step(action)
        played.append((action, obs))
        if terminated:
            break
    assert played == [
        ("go to shelf 1", "You arrive at shelf 1. On the shelf 1, you see a cup 2, a cup 1, and a laptop 1."),
        ("take laptop 1 from shelf 1", "You pick up the laptop 1 from the shelf 1."),
        (
            "go to desk 1",
            "You arrive at desk 1. On the desk 1, you see a basketball 1, a desklamp 1, "
            "and a tennisracket 2.",
        ),
        ("use desklamp 1", "You turn on the desklamp 1."),
    ]
    assert reward == 10.0 and info["won"]


def test_win_reward_is_configurable_and_the_step_limit_is_50() -> None:
    env = ALFWorldEnv(split="valid_seen", win_reward=1.0)
    env.reset(seed=0, options={"task_id": 5})
    total = 0.0
    while True:
        _, r, terminated, _, _ = env.step(env.expert_action())
        total += r
        if terminated:
            break
    assert total == 1.0
    env.reset(seed=0, options={"task_id": 5})
    for turn in range(1, 51):
        _, _, terminated, truncated, _ = env.step("look")
        assert not terminated and truncated is (turn == 50)


def test_observation_anchors_alias_states_that_hidden_state_anchors_separate() -> None:
    by_obs = ALFWorldEnv(split="valid_seen")
    by_state = ALFWorldEnv(split="valid_seen", anchor="state")
    anchors: dict[str, list[object]] = {"obs": [], "state": []}
    for env, key in ((by_obs, "obs"), (by_state, "state")):
        env.reset(seed=0, options={"task_id": 5})
        for action in ("go to microwave 1", "open microwave 1", "go to fridge 1", "inventory"):
            env.step(action)
        anchors[key].append(env.step("inventory")[4]["anchor"])
        env.step("go to microwave 1")
        env.step("close microwave 1")
        anchors[key].append(env.step("inventory")[4]["anchor"])
    # same text ("You are not carrying anything.") but a different microwave door
    assert anchors["obs"][0] == anchors["obs"][1] == "You are not carrying anything."
    assert anchors["state"][0] != anchors["state"][1]
    hash(anchors["state"][0])


def test_state_anchors_are_equal_for_equal_states_reached_differently() -> None:
    env = ALFWorldEnv(split="valid_seen", anchor="state")
    env.reset(seed=0, options={"task_id": 5})
    env.step("go to fridge 1")
    a = env.step("go to countertop 1")[4]["anchor"]
    env.reset(seed=1, options={"task_id": 5})
    env.step("look")
    a2 = env.step("go to countertop 1")[4]["anchor"]
    assert a == a2


def test_bad_configuration_and_task_ids() -> None:
    with pytest.raises(ConfigError, match="unknown ALFWorld split"):
        ALFWorldEnv(split="eval")
    with pytest.raises(ConfigError, match="anchor"):
        ALFWorldEnv(anchor="tokens")
    env = ALFWorldEnv(split="valid_seen")
    with pytest.raises(ConfigError, match=r"0\.\.139"):
        env.reset(options={"task_id": 140})
    with pytest.raises(ConfigError, match="integer task index"):
        env.reset(options={"task_id": "apple"})
    assert ALFWorldEnv(num_tasks=7).num_tasks == 7


def test_hostile_actions_are_invalid_observations_not_exceptions() -> None:
    env = ALFWorldEnv()
    env.reset(seed=3)
    for action in ("", "\x00\x01", "go to " * 1000, "put  in/on ", "move to", "take from"):
        obs, reward, terminated, _, info = env.step(action)
        assert (obs, reward, terminated, info["invalid_action"]) == ("Nothing happens.", 0.0, False, True)


def test_system_prompt_asks_for_think_and_action_tags() -> None:
    prompt = ALFWorldEnv().system_prompt
    assert "<think>" in prompt and "<action>" in prompt


def test_put_wording_and_task_type_filter() -> None:
    env = ALFWorldEnv(split="valid_seen", put_wording=True, task_types=[4])
    heat_only = ALFWorldEnv(split="valid_seen", task_types=[4])
    for k in range(10):
        heat_only.reset(seed=0, options={"task_id": k})
        assert heat_only.household.task_type == 4
    obs, _ = env.reset(seed=0, options={"task_id": 0})
    assert env.household.task_type == 4
    while True:
        action = env.expert_action()
        obs, reward, terminated, _, _ = env.step(action)
        if terminated:
            break
    assert action.startswith("put ") and " in/on " in action
    assert obs.startswith("You put the ") and " in/on the " in obs
    assert reward == 10.0
