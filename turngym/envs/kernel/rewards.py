"""Turn rewards of KernelGym (Dr.Kernel, Liu et al., arXiv 2602.05885) and the trainer's PRS hook.

Turn reward (``calculate_reward_speedup`` of Dr.Kernel's client), for a clean evaluation::

    r = w_c·1[correct] + w_p·s + w_cov·coverage·1[correct]
    s = min(speedup, cap)  if correct and speedup ≥ floor  else 0

with w_c = w_p = 0.5, cap = 3.0, floor = 0.0; the last term is the profiling-based reward (PR,
w_cov = 0.5 in Dr.Kernel's RL scripts, off by default here). An evaluation that did not finish
(compile error, runtime error, crash, timeout) gets ``failure_reward`` (0.0); one with hacking
findings gets ``hack_penalty`` (−1.0, the decoy-kernel penalty). When the speed was not measured
(Triton on CPU) s = 0 and the PR term uses the coverage if there is one.

Example: correct, speedup 1.8, coverage 0.9, w_cov 0.5 → 0.5 + 0.5·1.8 + 0.5·0.9 = 1.85;
correct at speedup 4.2 → 0.5 + 0.5·3.0 = 2.0 (capped); incorrect → 0.

PRS (profiling-based rejection sampling): a *correct* turn is kept for the loss with probability
``clip((coverage − threshold) / width, 0, 1)`` (threshold 0.3, width 0.1); incorrect turns are
always kept. TRLOO over turns needs nothing more than the per-turn rewards the env returns (each
step is rewarded): the trainer's ``trloo`` estimator takes them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from turngym.envs.kernel.evaluate import EvalResult
from turngym.errors import ConfigError


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the Dr.Kernel turn reward."""

    correct_weight: float = 0.5
    """w_c: reward for a correct kernel."""
    speedup_weight: float = 0.5
    """w_p: reward per unit of (capped) speedup."""
    speedup_cap: float = 3.0
    """Speedups above this count as this (Dr.Kernel's upper bound)."""
    speedup_floor: float = 0.0
    """Speedups below this count as 0 (0.0 in the RL scripts, 1.0 in the client's default)."""
    coverage_weight: float = 0.0
    """w_cov: the profiling-based reward's weight (0.5 in Dr.Kernel's RL scripts)."""
    failure_reward: float = 0.0
    """Reward of an evaluation that did not finish (compile/runtime error, crash, timeout)."""
    hack_penalty: float = -1.0
    """Reward of an answer with reward-hacking findings."""

    def __post_init__(self) -> None:
        if self.speedup_cap <= 0 or self.speedup_floor < 0:
            raise ConfigError("speedup_cap must be > 0 and speedup_floor >= 0")


def speedup_term(speedup: float | None, correct: bool, config: RewardConfig) -> float:
    """s = min(speedup, cap) for a correct, timed kernel at or above the floor, else 0."""
    if not correct or speedup is None or speedup < config.speedup_floor:
        return 0.0
    return min(speedup, config.speedup_cap)


def turn_reward(result: EvalResult, config: RewardConfig | None = None) -> float:
    """The reward of one submitted kernel (see the module docstring)."""
    config = config or RewardConfig()
    if result.hacks:
        return config.hack_penalty
    if result.status not in ("correct", "incorrect"):
        return config.failure_reward
    if not result.correct:
        return 0.0
    reward = config.correct_weight + config.speedup_weight * speedup_term(result.speedup, True, config)
    if config.coverage_weight and result.coverage is not None:
        reward += config.coverage_weight * result.coverage
    return reward


def prs_keep_probability(
    correct: bool, coverage: float | None, *, threshold: float = 0.3, width: float = 0.1
) -> float:
    """PRS: P(keep a turn) = clip((coverage − threshold) / width, 0, 1) if correct, else 1.

    Example: coverage 0.35 → 0.5; 0.25 → 0; 0.9 → 1; an incorrect turn → 1. A correct turn with
    no coverage measured is kept (nothing to judge it by).
    """
    if width <= 0:
        raise ConfigError(f"PRS width must be > 0, got {width}")
    if not correct or coverage is None:
        return 1.0
    return float(np.clip((coverage - threshold) / width, 0.0, 1.0))


def prs_keep_mask(
    correct_T: Sequence[bool],
    coverage_T: Sequence[float | None],
    rng: np.random.Generator,
    *,
    threshold: float = 0.3,
    width: float = 0.1,
) -> np.ndarray:
    """Per-turn keep decisions (bool, shape ``(T,)``): a rejected turn gets loss mask 0 and no gradient."""
    if len(correct_T) != len(coverage_T):
        raise ConfigError(f"correct_T has {len(correct_T)} turns but coverage_T has {len(coverage_T)}")
    probs = np.array(
        [
            prs_keep_probability(c, v, threshold=threshold, width=width)
            for c, v in zip(correct_T, coverage_T, strict=True)
        ]
    )
    return rng.random(len(probs)) < probs
