"""REINFORCE++ (Hu 2025) and its group-baseline variant, at turn granularity.

``reinforce_pp``: A_{i,t} = G_{i,t} = Σ_{k≥t} γ^{k−t} r_{i,k} (return-to-go over turns), then
whitened over the whole batch: (A − mean)/(std + ε) over all turns of all groups.
``reinforce_pp_baseline``: A_i = R_i − mean_{j∈group} R_j, broadcast to the turns, then whitened
over the batch the same way.

The paper whitens over tokens and folds a per-token KL penalty into the rewards; here the unit is
the turn (so the result does not depend on how many tokens a turn has or on the storage layout) and
the KL to the reference policy belongs to the loss (``kl_coef``), not to the advantage.

Worked example: one group, returns-to-go G = [1, 0, 0, 1] (γ = 1) → mean 0.5, std 0.5774 →
A = [0.866, −0.866, −0.866, 0.866].
"""

from __future__ import annotations

import numpy as np

from turngym.trainers.advantages.grpo import episode_advantage
from turngym.trainers.advantages.steps import EPS, StepBatch, returns_to_go


def whiten(values: np.ndarray) -> np.ndarray:
    """(x − mean)/(std + ε) over all entries (unbiased std; a single entry is only centred)."""
    if values.size < 2:
        return values - values.mean() if values.size else values
    return (values - values.mean()) / (values.std(ddof=1) + EPS)


def reinforce_pp(batch: StepBatch, *, gamma: float = 1.0) -> np.ndarray:
    """REINFORCE++: batch-whitened discounted return-to-go of every turn."""
    return whiten(returns_to_go(batch, gamma))


def reinforce_pp_baseline(batch: StepBatch) -> np.ndarray:
    """REINFORCE++-baseline: group-centred episode return, broadcast, then batch-whitened."""
    return whiten(episode_advantage(batch, normalize_std=False)[batch.traj])
