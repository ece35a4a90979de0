"""turngym/KeyDoor-v0: golden texts, the locked room, the paid compass, anchors, the expert."""

from __future__ import annotations

import numpy as np
import pytest

from turngym.agents.baselines import run_episode, summarize
from turngym.envs.toy.keydoor import COMPASS_CALL, KeyDoorEnv, displacement

TASK_0 = "You are in the cellar. Exits: north, south, west."
# task 0 (3 x 3): start cellar (1, 2), key pantry (1, 1), treasure gallery (2, 2)


def test_golden_reset_and_info() -> None:
    env = KeyDoorEnv()
    obs, info = env.reset(seed=0, options={"task_id": 0})
    assert obs == TASK_0
    assert info == {
        "task_id": 0,
        "won": False,
        "anchor": (0, "cellar", False, False),
        "admissible_actions": ["go north", "go south", "go west", COMPASS_CALL],
        "invalid_action": False,
        "metrics": {"turns": 0.0, "invalid_actions": 0.0, "parse_failures": 0.0},
    }
    assert KeyDoorEnv(size=4, split="test").reset(seed=0, options={"task_id": 0})[0] == (
        "You are in the bakery. Exits: north, south."
    )


def test_golden_expert_episode() -> None:
    env = KeyDoorEnv()
    env.reset(seed=0, options={"task_id": 0})
    played = []
    while True:
        action = env.expert_action()
        obs, reward, terminated, truncated, info = env.step(action)
        played.append((action, obs, reward, info["anchor"]))
        if terminated or truncated:
            break
    assert played == [
        (COMPASS_CALL, "Result: The key is 1 room west. " + TASK_0, 0.0, (0, "cellar", False, True)),
        (
            "go west",
            "You are in the pantry. Exits: north, south, west, east. The key is here.",
            0.0,
            (0, "pantry", False, True),
        ),
        (
            "take key",
            "You take the key. You are in the pantry. Exits: north, south, west, east. You carry the key.",
            0.0,
            (0, "pantry", True, False),
        ),
        (
            COMPASS_CALL,
            "Result: The treasure is 1 room south and 1 room east. You are in the pantry. Exits: north, "
            "south, west, east. You carry the key.",
            0.0,
            (0, "pantry", True, True),
        ),
        (
            "go east",
            "You are in the cellar. Exits: north, south, west. You carry the key. "
            "The treasure is 1 room south.",
            0.0,
            (0, "cellar", True, True),
        ),
        (
            "go south",
            "You unlock the gallery and find the treasure!",
            pytest.approx(0.94),
            (0, "gallery", True, True),
        ),
    ]
    assert info["won"] and info["metrics"]["tool_calls"] == 2.0


def test_the_treasure_room_is_locked_without_the_key() -> None:
    env = KeyDoorEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, reward, terminated, _, info = env.step("go south")
    assert obs == "The door to the gallery is locked. " + TASK_0
    assert (reward, terminated, info["invalid_action"], info["anchor"]) == (
        0.0,
        False,
        False,
        (0, "cellar", False, False),
    )


def test_compass_locates_the_goal_until_the_key_is_taken() -> None:
    env = KeyDoorEnv()
    env.reset(seed=0, options={"task_id": 0})
    env.step(COMPASS_CALL)
    obs, *_ = env.step("go north")
    assert obs == "You are in the library. Exits: south, west. The key is 1 room south and 1 room west."
    env.step("go south")
    env.step("go west")
    obs, *_, info = env.step("take key")
    assert "treasure" not in obs and info["anchor"] == (0, "pantry", True, False)


def test_redundant_compass_calls_loop_on_the_state_and_cost_reward() -> None:
    env = KeyDoorEnv(tool_cost=0.1)
    env.reset(seed=0, options={"task_id": 0})
    anchors = [env.step(COMPASS_CALL)[4]["anchor"] for _ in range(3)]
    assert anchors == [(0, "cellar", False, True)] * 3
    for action in ("go west", "take key", "go east"):
        env.step(action)
    _, reward, terminated, _, info = env.step("go south")
    assert terminated and info["won"] and info["metrics"]["tool_calls"] == 3.0
    assert reward == pytest.approx(0.7)
    env.reset(seed=0, options={"task_id": 0})
    for _ in range(12):
        env.step(COMPASS_CALL)
    for action in ("go west", "take key", "go east"):
        env.step(action)
    assert env.step("go south")[1] == 0.0  # the reward never goes below 0


@pytest.mark.parametrize(
    ("action", "message", "parse_failure"),
    [
        ("dance", "I don't understand 'dance'", 0.0),
        ("go east", "You can't go east from here.", 0.0),
        ("take key", "There is no key here.", 0.0),
        ('<tool_call>{"name": "map"}</tool_call>', "Invalid tool call: no tool named 'map'", 0.0),
        ("<tool_call>{oops</tool_call>", "Invalid tool call:", 1.0),
    ],
)
def test_invalid_actions_are_observations(action: str, message: str, parse_failure: float) -> None:
    env = KeyDoorEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, reward, terminated, truncated, info = env.step(action)
    assert obs.startswith(message) and obs.endswith(TASK_0)
    assert (reward, terminated, truncated, info["invalid_action"]) == (0.0, False, False, True)
    assert info["anchor"] == (0, "cellar", False, False)
    assert info["metrics"]["parse_failures"] == parse_failure


def test_take_key_twice_is_invalid() -> None:
    env = KeyDoorEnv()
    env.reset(seed=0, options={"task_id": 0})
    env.step("west")  # a bare direction is accepted, as in the maze
    env.step("take key")
    obs, *_, info = env.step("Take key.")
    assert obs.startswith("You already carry the key.") and info["invalid_action"]


def test_anchors_recur_across_the_episodes_of_a_group() -> None:
    rng = np.random.default_rng(0)
    seen: list[set] = []
    for _ in range(2):
        env = KeyDoorEnv()
        env.reset(seed=3, options={"task_id": 5})
        anchors = set()
        for _ in range(20):
            _, _, terminated, truncated, info = env.step(env.random_action(rng))
            anchors.add(info["anchor"])
            if terminated or truncated:
                break
        seen.append(anchors)
    assert len(seen[0] & seen[1]) >= 2


@pytest.mark.parametrize("size", [2, 3, 4])
def test_expert_always_wins_with_two_compass_calls(size: int) -> None:
    env = KeyDoorEnv(size=size, max_turns=60)
    turns = []
    for task in range(150):
        env.reset(seed=0, options={"task_id": task})
        assert env._key in env._reachable(env._pos) and env._pos != env._goal
        traj_turns, won, calls = 0, False, 0.0
        while True:
            *_, terminated, truncated, info = env.step(env.expert_action())
            traj_turns += 1
            if terminated or truncated:
                won, calls = info["won"], info["metrics"]["tool_calls"]
                break
        assert won and calls == 2.0, task
        turns.append(traj_turns)
    if size == 3:
        assert 7.0 < np.mean(turns) < 8.5 and max(turns) <= 20


def test_random_agent_is_far_worse_than_the_expert() -> None:
    expert = summarize(
        [run_episode(KeyDoorEnv(), "turngym/KeyDoor-v0", "expert", task_id=k, seed=k) for k in range(30)]
    )
    rand = summarize(
        [run_episode(KeyDoorEnv(), "turngym/KeyDoor-v0", "random", task_id=k, seed=k) for k in range(30)]
    )
    assert expert.success_rate == 1.0
    assert rand.success_rate < 0.5


def test_displacement_text() -> None:
    assert displacement((0, 0), (1, 2)) == "1 room south and 2 rooms east"
    assert displacement((2, 2), (0, 2)) == "2 rooms north"
    assert displacement((1, 1), (1, 1)) == "here"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 1}, "size must be between 2 and 5"),
        ({"split": "dev"}, "split must be one of"),
        ({"tool_cost": -0.5}, "tool_cost must be between 0 and 1"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyDoorEnv(**kwargs)  # type: ignore[arg-type]
