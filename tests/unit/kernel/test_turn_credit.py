"""KernelGym's per-turn rewards feed the trainer's TRLOO unchanged; PRS masks lazy correct turns.

Three refinement trajectories of one task (γ = 1), rewards from :func:`turn_reward`:
a: incorrect → correct at 1.0× → correct at 3.0×   rewards [0, 1.0, 2.0]   G = [3.0, 3.0, 2.0]
b: correct 1.0× → correct 2.0× (stops)            rewards [1.0, 1.5]      G = [2.5, 1.5]
c: hacked → incorrect → correct, speed unmeasured rewards [−1, 0, 0.5]    G = [−0.5, 0.5, 0.5]
TRLOO turn 1 (N=3): a 3 − (2.5 − 0.5)/2 = 2.0, b 2.5 − 1.25 = 1.25, c −0.5 − 2.75 = −3.25;
turn 2 (N=3): a 3 − 1 = 2.0, b 1.5 − 1.75 = −0.25, c 0.5 − 2.25 = −1.75; turn 3 (N=2): a 1.5, c −1.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from turngym.envs.kernel.evaluate import EvalResult
from turngym.envs.kernel.hacks import HackFinding
from turngym.envs.kernel.rewards import prs_keep_mask, turn_reward
from turngym.trainers.advantages import StepBatch, StepRow
from turngym.trainers.advantages.trloo import trloo


def correct(speedup: float | None, coverage: float | None = 0.9) -> EvalResult:
    return EvalResult("correct", compiled=True, correct=True, speedup=speedup, coverage=coverage)


INCORRECT = EvalResult("incorrect", compiled=True)
HACKED = EvalResult("correct", compiled=True, correct=True, hacks=(HackFinding("reference_op", "torch.mm"),))
EPISODES = {
    "a": [INCORRECT, correct(1.0), correct(3.0)],
    "b": [correct(1.0), correct(2.0, coverage=0.2)],
    "c": [HACKED, INCORRECT, correct(None)],
}


def test_trloo_over_kernel_turn_rewards() -> None:
    rows = [
        StepRow(group=0, trajectory=name, turn=t, reward=turn_reward(result))
        for name, results in EPISODES.items()
        for t, result in enumerate(results)
    ]
    assert [r.reward for r in rows] == [0.0, 1.0, 2.0, 1.0, 1.5, -1.0, 0.0, 0.5]
    advantages = trloo(StepBatch.from_rows(rows))
    expected = [2.0, 2.0, 1.5, 1.25, -0.25, -3.25, -1.75, -1.5]
    assert advantages.tolist() == pytest.approx(expected)


def test_prs_drops_only_the_lazy_correct_turn() -> None:
    results = EPISODES["b"] + EPISODES["a"]
    rng = np.random.default_rng(0)
    mask = prs_keep_mask([r.correct for r in results], [r.coverage for r in results], rng)
    assert mask.tolist() == [True, False, True, True, True]
