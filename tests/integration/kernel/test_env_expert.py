"""The expert solves built-in KernelGym-v0 tasks end to end on CPU (real compile, evaluation, timing).

``turngym eval turngym/KernelGym-v0 --agent expert --episodes 24`` covers every task (see the
README's benchmark table); this test plays a single-stage task, a refinement task and a Triton one.
"""

from __future__ import annotations

import importlib.util

import pytest

from turngym.agents.baselines import run_episode
from turngym.envs.kernel.env import KernelGymEnv
from turngym.trajectory import StopReason

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def play(env: KernelGymEnv, task_id: str):
    index = next(i for i, t in enumerate(env.tasks) if t.task_id == task_id)
    return run_episode(env, "turngym/KernelGym-v0", "expert", seed=0, task_id=index)


@pytest.mark.parametrize("task_id", ["1_ReLU", "11_Matmul"])
def test_expert_wins_cpp_tasks(task_id: str) -> None:
    env = KernelGymEnv(num_perf_trials=5)
    trajectory = play(env, task_id)
    assert trajectory.stop_reason == StopReason.WON
    assert all(turn.reward >= 0.5 for turn in trajectory.turns)  # every submission correct and clean
    if task_id == "11_Matmul":  # the naive kernel first; the refined one once the feedback came back
        first, second = (turn.action for turn in trajectory.turns[:2])
        assert "_lib.matmul_naive(" in first and "_lib.matmul_tiled(" not in first
        assert "_lib.matmul_tiled(" in second
    env.close()


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (the kernel extra)")
def test_expert_wins_a_triton_task_in_the_interpreter() -> None:
    env = KernelGymEnv(backend="triton")
    trajectory = play(env, "8_Softmax")
    assert trajectory.stop_reason == StopReason.WON and len(trajectory.turns) == 1
    assert trajectory.turns[0].reward == pytest.approx(0.5)  # correct; speed not measured
    env.close()
