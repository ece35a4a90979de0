"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024; Kool et al. 2019).

A_i = R_i − (1/(N−1))·Σ_{j≠i} R_j = N/(N−1)·(R_i − mean_j R_j), broadcast to every turn of
trajectory i. A singleton group has no other sample: its baseline is 0 and A = R.

Worked example (research note §7): R = [1, 0, 0, 1, 1] → A = [0.5, −0.75, −0.75, 0.5, 0.5].
"""

from __future__ import annotations

import numpy as np

from turngym.trainers.advantages.steps import StepBatch, dense_keys


def leave_one_out(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """x_i − mean of the other members of i's key; x_i itself for a singleton."""
    if values.size == 0:
        return values.astype(np.float64)
    inv = dense_keys(keys)
    count = np.bincount(inv).astype(np.float64)
    total = np.bincount(inv, weights=values)
    n = count[inv]
    others = (total[inv] - values) / np.maximum(n - 1, 1)
    return np.where(n > 1, values - others, values)


def rloo_episode(batch: StepBatch) -> np.ndarray:
    """float64 [N]: the leave-one-out advantage of each trajectory's return."""
    return leave_one_out(batch.episode_return, batch.traj_group)


def rloo(batch: StepBatch) -> np.ndarray:
    """RLOO: the leave-one-out episode advantage, broadcast to every turn."""
    return rloo_episode(batch)[batch.traj]
