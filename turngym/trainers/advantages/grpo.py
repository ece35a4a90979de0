"""GRPO and Dr.GRPO: one outcome advantage per trajectory, broadcast to all of its turns.

GRPO (Shao et al. 2024, DeepSeekMath):  A_i = (R_i − mean_j R_j) / (std_j R_j + ε), std unbiased.
Dr.GRPO (Liu et al. 2025, "Understanding R1-Zero-like training"): A_i = R_i − mean_j R_j (no std;
pair it with the ``seq-mean-token-sum-norm`` loss aggregation). R_i is the episode return Σ_t r_{i,t}.

A singleton group gets mean 0 and std 1 (A = R), as verl does. ``episode_stats="step_weighted"``
counts each trajectory once per turn in the mean/std (verl-agent's ``compute_mean_std_cross_steps``);
the default ``trajectory`` averages over the N trajectories as the papers do.

Worked example (research note §7): R = [1, 0, 0, 1, 1] → mean 0.6, std 0.5477;
GRPO A = [0.7303, −1.0954, −1.0954, 0.7303, 0.7303]; Dr.GRPO A = [0.4, −0.6, −0.6, 0.4, 0.4].
"""

from __future__ import annotations

import numpy as np

from turngym.errors import ConfigError
from turngym.trainers.advantages.steps import StepBatch, group_normalize

EPISODE_STATS = ("trajectory", "step_weighted")


def episode_advantage(
    batch: StepBatch, *, normalize_std: bool, episode_stats: str = "trajectory"
) -> np.ndarray:
    """float64 [N]: the group-normalized episode return of every trajectory."""
    if episode_stats not in EPISODE_STATS:
        raise ConfigError(f"episode_stats must be one of {EPISODE_STATS}, got {episode_stats!r}")
    weights = batch.traj_len if episode_stats == "step_weighted" else None
    return group_normalize(
        batch.episode_return, batch.traj_group, normalize_std=normalize_std, weights=weights
    )


def grpo(batch: StepBatch, *, normalize_std: bool = True, episode_stats: str = "trajectory") -> np.ndarray:
    """GRPO: the group-normalized episode return, broadcast to every turn."""
    return episode_advantage(batch, normalize_std=normalize_std, episode_stats=episode_stats)[batch.traj]


def dr_grpo(batch: StepBatch, *, episode_stats: str = "trajectory") -> np.ndarray:
    """Dr.GRPO: the group-centred episode return (no std), broadcast to every turn."""
    return grpo(batch, normalize_std=False, episode_stats=episode_stats)
