"""Reward shaping, rollout metrics and seed derivation of the rollout stage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from turngym.trainers.rollout import derive_seed, episode_tool_calls, rollout_metrics, shape_rewards
from turngym.trajectory import StopReason, Trajectory, Turn


def episode(rewards, invalid, won):
    turns = tuple(
        Turn("o", "a", r, "s", {"invalid_action": bad}, action_ids=(1, 2), action_logprobs=(-1.0, -1.0))
        for r, bad in zip(rewards, invalid, strict=True)
    )
    return Trajectory("toy", 0, 0, turns, StopReason.WON if won else StopReason.LOST, won)


def test_shape_rewards_penalizes_only_invalid_turns():
    groups = [[episode([0, 0, 1], [True, False, False], True), episode([0, 0], [True, True], False)]]
    shaped = shape_rewards(groups, 0.1)
    assert [t.reward for t in shaped[0][0].turns] == pytest.approx([-0.1, 0, 1])
    assert shaped[0][1].total_reward == pytest.approx(-0.2)
    assert groups[0][0].turns[0].reward == 0  # inputs are not modified
    assert shape_rewards(groups, 0.0) == [list(groups[0])]


def test_rollout_metrics():
    raw = [[episode([0, 1], [True, False], True), episode([0, 0], [False, False], False)]]
    m = rollout_metrics(raw, shape_rewards(raw, 0.5))
    assert m["rollout/episodes"] == 2
    assert m["rollout/success_rate"] == 0.5
    assert m["rollout/mean_turns"] == 2
    assert m["rollout/invalid_rate"] == 0.25
    assert m["rollout/action_tokens"] == 8
    assert m["reward/mean_return"] == 0.5
    assert m["reward/shaped_mean"] == pytest.approx(0.25)
    assert m["rollout/env_tool_calls"] == 0.0  # the env reported no tool_calls


def test_env_tool_calls_come_from_the_last_info_metrics():
    calls = [
        replace(episode([0, 1], [False, False], True), metadata={"metrics": {"tool_calls": n}})
        for n in (3, 0)
    ]
    assert [episode_tool_calls(t) for t in calls] == [3.0, 0.0]
    assert rollout_metrics([calls], [calls])["rollout/env_tool_calls"] == 1.5


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, i) for i in range(100)}) == 100
    assert 0 <= derive_seed(5, 5) < 2**63
