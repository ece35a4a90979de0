"""The TextEnv base class (info keys, counters, limits, render, reset options) and the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.foundation.envs_for_tests import CounterEnv
from turngym.agents.baselines import run_episode, summarize, wilson_interval
from turngym.envs.core import MAX_ACTION_CHARS
from turngym.envs.spaces import FreeText
from turngym.errors import ResetNeeded
from turngym.trajectory import StopReason, Trajectory, Turn


def test_step_before_reset_raises_reset_needed_with_the_fix() -> None:
    with pytest.raises(ResetNeeded, match=r"call env.reset\(\) first"):
        CounterEnv().step("inc")


def test_info_keys_and_counters() -> None:
    env = CounterEnv(target=3)
    obs, info = env.reset(seed=1, options={"task_id": 0})
    assert obs == "count 0 of 3"
    assert info == {
        "task_id": 0,
        "won": False,
        "anchor": ("count", 0),
        "admissible_actions": ["inc"],
        "invalid_action": False,
        "metrics": {"turns": 0.0, "invalid_actions": 0.0, "parse_failures": 0.0},
    }
    env.step("nope")
    env.step(7)  # type: ignore[arg-type]  # deliberately not a str
    obs, reward, terminated, truncated, info = env.step("inc")
    assert (obs, reward, terminated, truncated) == ("count 1", 0.0, False, False)
    assert info["metrics"] == {"turns": 3.0, "invalid_actions": 2.0, "parse_failures": 1.0}


def test_non_string_and_oversized_actions_are_invalid_parse_failures() -> None:
    env = CounterEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, _, _, _, info = env.step(None)  # type: ignore[arg-type]  # deliberately not a str
    assert obs == "Invalid action: expected a string, got NoneType."
    assert info["invalid_action"] and info["metrics"]["parse_failures"] == 1.0
    obs, _, _, _, info = env.step("i" * (MAX_ACTION_CHARS + 1))
    assert (
        obs == f"Invalid action: {MAX_ACTION_CHARS + 1} characters is over the limit of {MAX_ACTION_CHARS}."
    )
    assert info["metrics"]["parse_failures"] == 2.0


def test_turn_limit_truncates_and_then_needs_a_reset() -> None:
    env = CounterEnv(target=10, max_turns=2)
    env.reset(seed=0, options={"task_id": 0})
    assert env.step("inc")[3] is False
    _, _, terminated, truncated, _ = env.step("inc")
    assert (terminated, truncated) == (False, True)
    with pytest.raises(ResetNeeded):
        env.step("inc")
    env.reset(seed=0, options={"task_id": 0})  # a reset starts a new episode
    assert env.step("inc")[4]["metrics"]["turns"] == 1.0


def test_termination_wins_over_truncation_on_the_last_turn() -> None:
    env = CounterEnv(target=2, max_turns=2)
    env.reset(seed=0, options={"task_id": 0})
    env.step("inc")
    _, reward, terminated, truncated, info = env.step("inc")
    assert (reward, terminated, truncated, info["won"]) == (1.0, True, False, True)


def test_task_drawn_from_the_seed_is_reproducible_and_covers_the_split() -> None:
    drawn = {CounterEnv().reset(seed=s)[1]["task_id"] for s in range(40)}
    assert drawn == {0, 1, 2, 3}
    assert CounterEnv().reset(seed=11)[1]["task_id"] == CounterEnv().reset(seed=11)[1]["task_id"]


def test_unknown_reset_option_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown reset options \['level'\]; the only option is 'task_id'"):
        CounterEnv().reset(options={"level": 2})


def test_render_modes() -> None:
    env = CounterEnv(render_mode="ansi")
    env.reset(seed=0, options={"task_id": 2})
    assert env.render() == "count 2 of 5"
    with pytest.raises(
        ValueError, match=r"render_mode must be one of \['ansi', 'human'\] or None, got 'rgb'"
    ):
        CounterEnv(render_mode="rgb")


def test_human_render_prints(capsys: pytest.CaptureFixture[str]) -> None:
    env = CounterEnv(render_mode="human")
    env.reset(seed=0, options={"task_id": 1})
    assert env.render() is None
    assert capsys.readouterr().out == "count 1 of 4\n"


def test_free_text_space_contains_any_bounded_string() -> None:
    space = FreeText(10, min_length=1)
    assert space.contains("héllo\n{}!")
    assert not space.contains("")
    assert not space.contains("x" * 11)
    assert not space.contains(b"bytes")
    assert all(space.contains(space.sample()) for _ in range(20))
    assert repr(space) == "FreeText(1, 10)"


def test_random_action_needs_admissible_actions() -> None:
    env = CounterEnv()
    env.reset(seed=0, options={"task_id": 0})
    assert env.random_action(np.random.default_rng(0)) == "inc"


# ---- baselines ------------------------------------------------------------------------------------
def test_wilson_interval_hand_computed() -> None:
    # p = 0.8, n = 10, z = 1.96: centre (0.8 + 0.19208) / 1.38415 = 0.71674,
    # half-width 1.96 * sqrt(0.016 + 0.0096040) / 1.38415 = 0.22658.
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and math.isclose(lo, 0.5655, abs_tol=1e-4)


def test_summarize_numbers() -> None:
    won = Trajectory("e", 0, 0, (Turn("a", "x", 0.0, info={"invalid_action": True}), Turn("b", "y", 1.0)),
                     StopReason.WON, won=True)  # fmt: skip
    lost = Trajectory("e", 1, 1, (Turn("a", "x", 0.5),), StopReason.LOST)
    s = summarize([won, lost])
    assert (s.episodes, s.success_rate, s.mean_return, s.mean_turns) == (2, 0.5, 0.75, 1.5)
    assert math.isclose(s.invalid_rate, 1 / 3)
    assert summarize([]).success_rate == 0.0


def test_run_episode_records_turns_anchors_and_outcome() -> None:
    env = CounterEnv(target=2)
    traj = run_episode(env, "testns/Counter-v0", "expert", seed=3, task_id=1)
    assert traj.stop_reason is StopReason.WON and traj.won
    assert [(t.observation, t.action, t.reward, t.anchor) for t in traj.turns] == [
        ("count 1 of 3", "inc", 0.0, ("count", 1)),
        ("count 2", "inc", 1.0, ("count", 2)),
    ]
    assert traj.metadata == {
        "agent": "expert",
        "metrics": {"turns": 2.0, "invalid_actions": 0.0, "parse_failures": 0.0},
    }


def test_run_episode_records_truncation_and_env_errors() -> None:
    truncated = run_episode(CounterEnv(target=9, max_turns=2), "c", "expert", seed=0, task_id=0)
    assert truncated.stop_reason is StopReason.TRUNCATED and not truncated.won

    class Exploding(CounterEnv):
        def _step(self, action: str) -> object:  # type: ignore[override]
            raise OSError("disk on fire")

    failed = run_episode(Exploding(), "c", "expert", seed=0, task_id=0)
    assert failed.stop_reason is StopReason.ENV_ERROR
    assert failed.turns[-1].info == {"error": "OSError: disk on fire"}


def test_unknown_baseline_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"unknown baseline agent 'gpt'; choose one of \('expert', 'random'\)"
    ):
        run_episode(CounterEnv(), "c", "gpt", seed=0)
