"""Cross-validation against the real ALFWorld engine (TextWorld's PDDL env + ALFWorld's domain and
grammar), through ``turngym/ALFWorld-TW-v0`` on games exported from our generator.

For one task of each of the six types, both engines play the same commands (random admissible
commands first, then our expert to the goal) and must agree after every step on the observation
text, the admissible commands, the reward and success.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textworld")
pytest.importorskip("alfworld")

from turngym.envs.alfworld.env import ALFWorldEnv
from turngym.envs.alfworld.export import export_game
from turngym.envs.alfworld.tw_env import ALFWorldTWEnv
from turngym.envs.alfworld.world import generate
from turngym.errors import ConfigError

pytestmark = pytest.mark.integration


def _one_task_per_type(split: str) -> list[int]:
    first: dict[int, int] = {}
    k = 0
    while len(first) < 6:
        first.setdefault(generate(split, k).task_type, k)
        k += 1
    return [first[t] for t in sorted(first)]


@pytest.mark.parametrize("task_id", _one_task_per_type("valid_seen"))
def test_both_engines_agree_step_by_step(task_id: int, tmp_path: Path) -> None:
    ours = ALFWorldEnv(split="valid_seen")
    real = ALFWorldTWEnv(split="valid_seen", cache_dir=str(tmp_path))
    obs, info = ours.reset(seed=0, options={"task_id": task_id})
    obs_tw, info_tw = real.reset(seed=0, options={"task_id": task_id})
    assert obs_tw == obs
    assert info_tw["admissible_actions"] == info["admissible_actions"]
    rng = np.random.default_rng(task_id)
    for step in range(50):
        action = ours.random_action(rng) if step < 6 else ours.expert_action()
        result, result_tw = ours.step(action), real.step(action)
        assert result_tw[:4] == result[:4], (step, action)
        assert result_tw[4]["admissible_actions"] == result[4]["admissible_actions"], (step, action)
        assert result_tw[4]["won"] == result[4]["won"]
        if result[2]:
            break
    assert result[4]["won"] and result[1] == 10.0


def test_user_game_directory_loads_and_plays(tmp_path: Path) -> None:
    for k in (0, 1):
        export_game(generate("valid_seen", k), tmp_path / "games")
    unsolvable = export_game(generate("valid_seen", 2), tmp_path / "games")
    data = json.loads(unsolvable.read_text())
    unsolvable.write_text(json.dumps({**data, "solvable": False}))
    env = ALFWorldTWEnv(game_dir=str(tmp_path / "games"))
    assert env.num_tasks == 2
    obs, _ = env.reset(seed=0, options={"task_id": 1})
    assert obs.endswith("Your task is to: look at creditcard under the floorlamp.")
    obs, _, _, _, info = env.step("fly to the moon")
    assert obs == "Nothing happens." and info["invalid_action"]
    while True:
        obs, reward, terminated, truncated, info = env.step(env.expert_action())
        if terminated or truncated:
            break
    assert info["won"] and reward == 10.0
    env.close()


def test_expert_replans_off_the_walkthrough_and_state_anchors(tmp_path: Path) -> None:
    env = ALFWorldTWEnv(split="valid_seen", cache_dir=str(tmp_path), anchor="state")
    _, info = env.reset(seed=0, options={"task_id": 5})
    start = info["anchor"]
    assert sum(fact.lower().startswith("atlocation(agent1") for fact in start) == 1
    assert "opened(" not in " ".join(start).lower()  # every openable receptacle starts closed
    env.step("go to fridge 1")
    assert env.step("look")[4]["anchor"] != start
    for _ in range(20):
        _, _, terminated, _, info = env.step(env.expert_action())
        if terminated:
            break
    assert info["won"]


def test_bad_game_directories_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        ALFWorldTWEnv(game_dir=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no solvable"):
        ALFWorldTWEnv(game_dir=str(tmp_path / "empty"))
    bad = tmp_path / "bad" / "g"
    bad.mkdir(parents=True)
    (bad / "game.tw-pddl").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable"):
        ALFWorldTWEnv(game_dir=str(tmp_path / "bad"))
