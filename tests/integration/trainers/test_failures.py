"""The failure rule in a real training run: failed groups are re-rolled or dropped, never trained.

The flaky maze fails its reset for every task id divisible by 7 (no retry can save those groups)
and fails a step at random (a seeded stream shared by the whole test, so retries can succeed).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import turngym
from turngym.envs.core import StepOutcome
from turngym.envs.toy.maze import MazeEnv
from turngym.trainers import loop as train_loop
from turngym.trainers.config_load import load_config
from turngym.trajectory import Trajectory

pytestmark = pytest.mark.slow

FLAKY = "tests/FlakyMaze-v0"
_STEP_FAILURES = random.Random(0)


class FlakyMaze(MazeEnv):
    """A maze whose reset raises for some tasks and whose step raises now and then."""

    def _reset(self, task_id: Any) -> str:
        if int(task_id) % 7 == 0:
            raise ConnectionError(f"the env server lost task {task_id}")
        return super()._reset(task_id)

    def _step(self, action: str) -> StepOutcome:
        if self.split == "train" and _STEP_FAILURES.random() < 0.03:
            raise RuntimeError("the simulator crashed")
        return super()._step(action)


def test_a_flaky_env_trains_on_no_failed_trajectory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if FLAKY not in turngym.list_envs():
        turngym.register(FLAKY, f"{__name__}:FlakyMaze", size=2, max_turns=4)
    trained: list[list[Trajectory]] = []
    original = train_loop.compute_group_advantages

    def spy(config: Any, groups: list[list[Trajectory]]) -> Any:
        trained.extend(groups)
        return original(config, groups)

    monkeypatch.setattr(train_loop, "compute_group_advantages", spy)
    config = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            f"env.env_id={FLAKY}",
            "env.kwargs={}",
            "env.train_tasks=60",
            "iterations=3",
            "tensorboard=false",
            "progress=false",
            "rollout.group_size=4",
            "rollout.groups_per_iteration=8",
            "rollout.max_retries=1",
            "sft.enabled=false",
            "eval.episodes=10",
            "eval.every=3",
        ],
    )
    train_loop.train(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    iterations = [r for r in rows if r["iteration"] >= 1]
    assert len(iterations) == 3
    dropped = sum(r["rollout/dropped_groups"] for r in iterations)
    reset_failures = sum(r.get("rollout/failures/env_error", 0.0) for r in iterations)
    assert dropped >= 1 and reset_failures >= 8  # a task % 7 == 0 fails all 4 episodes, twice
    assert sum(r["rollout/retried_groups"] for r in iterations) > dropped  # some retries succeeded
    assert trained and all(not t.stop_reason.is_failure for g in trained for t in g)
    assert all(int(t.task_id) % 7 for g in trained for t in g)
    assert any(t.metadata["attempt"] == 1 for g in trained for t in g)
    assert all(len(g) == 4 for g in trained)
    eval_row = next(r for r in rows if r["iteration"] == 3 and "eval/failed_episodes" in r)
    assert eval_row["eval/failed_episodes"] == 2.0  # held-out tasks 0 and 7 cannot reset


def test_episodes_without_a_single_turn_train_nothing_and_do_not_crash(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            "iterations=2",
            "tensorboard=false",
            "progress=false",
            "rollout.max_context_tokens=20",  # shorter than any first prompt: every episode has 0 turns
            "sft.enabled=false",
            "eval.episodes=2",
        ],
    )
    train_loop.train(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    iterations = [r for r in rows if r["iteration"] >= 1]
    assert [r["loss/optimizer_steps"] for r in iterations] == [0.0, 0.0]
    assert all(r["rollout/mean_turns"] == 0.0 and r["rollout/dropped_groups"] == 0.0 for r in iterations)
