"""TRLOO: turn-level REINFORCE leave-one-out (Dr.Kernel, Liu et al., arXiv 2602.05885).

Each turn t has a return-to-go G_{i,t} = r_{i,t} + γ·G_{i,t+1}. The turn-level group U_t holds the
trajectories of the group that reached turn t (it shrinks as trajectories end); with N_t = |U_t|:

    A_{i,t} = G_{i,t} − (1/(N_t − 1))·Σ_{j∈U_t, j≠i} G_{j,t}     (= N_t/(N_t−1)·(G_{i,t} − mean_{U_t} G))

and A_{i,t} = G_{i,t} when N_t = 1. No std normalization. GRPO-style centring equals
((N_t−1)/N_t)·A^TRLOO, a shrinkage that grows as turn groups shrink; TRLOO's baseline excludes i
and so is unbiased.

Worked example (research note §4.5), γ = 1: rewards a = [0, 0.5, 1], b = [0.5, 1], c = [0, 0, 0.5]
→ G a = [1.5, 1.5, 1], b = [1.5, 1], c = [0.5, 0.5, 0.5] → turn 1: a 0.5, b 0.5, c −1;
turn 2: a 0.75, b 0, c −0.75; turn 3 (N = 2): a 0.5, c −0.5.
"""

from __future__ import annotations

import numpy as np

from turngym.trainers.advantages.rloo import leave_one_out
from turngym.trainers.advantages.steps import StepBatch, returns_to_go


def trloo(batch: StepBatch, *, gamma: float = 1.0) -> np.ndarray:
    """TRLOO: leave-one-out over the trajectories of the group that reached the same turn index."""
    turn_groups = batch.group * (int(batch.turn.max()) + 1 if batch.num_steps else 1) + batch.turn
    return leave_one_out(returns_to_go(batch, gamma), turn_groups)
