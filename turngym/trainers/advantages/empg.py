"""EMPG: entropy-modulated policy gradients (Wang et al., arXiv 2509.09265).

Given a host advantage A_{i,t} (any registered estimator; GRPO by default) and the step entropy
H_{i,t} (mean token entropy of the turn's sampled action):

    H̃ = (H − min H)/(max H − min H + 1e-8)               (min–max over the batch)
    g_{i,t} = exp(−k·H̃_{i,t}) / mean_batch exp(−k·H̃)    (batch mean of g is 1)
    f_{i,t} = exp(−k′·H̃_{i,t+1}), 0 for a trajectory's last turn   (future-clarity bonus)
    A'_{i,t} = g_{i,t}·A_{i,t} + ζ·f_{i,t}, then centred to zero mean over the batch.

Confident turns are amplified, uncertain ones damped. Defaults k = k′ = 1, ζ = 0.05 (the research
note's port defaults; the paper grid-searches them per task). Needs entropies on every turn.

Worked example (research note §5): A = [1, 1 | −1, −1], H = [0.2, 0.8 | 0.5, 1.0] →
H̃ = [0, 0.75 | 0.375, 1], g = [1.5826, 0.7476 | 1.0877, 0.5822],
A' = [1.6062, 0.7476 | −1.0693, −0.5822] → centred [1.4306, 0.5720 | −1.2449, −0.7578].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from turngym.errors import TrainerError
from turngym.trainers.advantages.steps import StepBatch


def entropy_modulate(
    batch: StepBatch, base: np.ndarray, *, k: float = 1.0, k_next: float = 1.0, zeta: float = 0.05
) -> np.ndarray:
    """Apply EMPG's scaling and bonus to the per-step advantages ``base``."""
    if batch.num_steps == 0:
        return base
    h = batch.entropy
    if np.isnan(h).any():
        missing = int(np.isnan(h).sum())
        raise TrainerError(
            f"empg needs the entropy of every turn but {missing} of {batch.num_steps} turns have none; "
            "sample with SamplingParams(entropies=True)"
        )
    h_norm = (h - h.min()) / (h.max() - h.min() + 1e-8)
    scale = np.exp(-k * h_norm)
    scale /= scale.mean()
    nxt = np.roll(h_norm, -1)
    bonus = np.where(batch.is_last, 0.0, np.exp(-k_next * nxt))
    out = scale * base + zeta * bonus
    return out - out.mean()


def empg(
    batch: StepBatch,
    *,
    host: str = "grpo",
    k: float = 1.0,
    k_next: float = 1.0,
    zeta: float = 0.05,
    **host_params: Any,
) -> np.ndarray:
    """EMPG on top of the registered estimator ``host`` (its parameters pass through)."""
    from turngym.trainers.advantages import get_estimator

    base = get_estimator(host)(batch, **host_params)
    return entropy_modulate(batch, base, k=k, k_next=k_next, zeta=zeta)
