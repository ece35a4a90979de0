"""Dr.Kernel turn rewards and PRS keep probabilities, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from turngym.envs.kernel.evaluate import EvalResult
from turngym.envs.kernel.hacks import HackFinding
from turngym.envs.kernel.rewards import RewardConfig, prs_keep_mask, prs_keep_probability, turn_reward
from turngym.errors import ConfigError


def result(
    status: str = "correct", speedup: float | None = 1.8, coverage: float | None = 0.9, **kw
) -> EvalResult:
    return EvalResult(
        status, compiled=True, correct=status == "correct", speedup=speedup, coverage=coverage, **kw
    )


def test_correct_turn_reward_with_profiling_term() -> None:
    # 0.5·1 + 0.5·1.8 + 0.5·0.9 = 1.85 (module docstring example)
    assert turn_reward(result(), RewardConfig(coverage_weight=0.5)) == pytest.approx(1.85)


def test_speedup_is_capped_and_coverage_off_by_default() -> None:
    assert turn_reward(result(speedup=4.2)) == pytest.approx(0.5 + 0.5 * 3.0)


def test_floor_and_unmeasured_speed_count_as_zero() -> None:
    assert turn_reward(result(speedup=0.8), RewardConfig(speedup_floor=1.0)) == pytest.approx(0.5)
    assert turn_reward(result(speedup=None)) == pytest.approx(0.5)


def test_failures_and_hacks() -> None:
    assert turn_reward(result("incorrect", speedup=None)) == 0.0
    assert turn_reward(EvalResult("compile_error")) == 0.0
    assert turn_reward(EvalResult("timeout"), RewardConfig(failure_reward=-0.5)) == -0.5
    hacked = result(hacks=(HackFinding("reference_op", "torch.relu"),))
    assert turn_reward(hacked) == -1.0


@pytest.mark.parametrize(
    ("correct", "coverage", "expected"),
    [(True, 0.35, 0.5), (True, 0.25, 0.0), (True, 0.9, 1.0), (False, 0.0, 1.0), (True, None, 1.0)],
)
def test_prs_keep_probability(correct: bool, coverage: float | None, expected: float) -> None:
    assert prs_keep_probability(correct, coverage) == pytest.approx(expected)


def test_prs_keep_mask_rejects_lazy_correct_turns_only() -> None:
    rng = np.random.default_rng(0)
    mask = prs_keep_mask([True, False, True], [0.1, 0.0, 0.95], rng)
    assert mask.tolist() == [False, True, True]
    with pytest.raises(ConfigError):
        prs_keep_mask([True], [0.5, 0.5], rng)
