"""ARPO's step entropy and branch probability, and AEPO's budget split (pure functions).

Step entropy (ARPO reference code; research note §3.1): of a generated segment, take the first
``k`` positions and at each the top log-probs ``(token, log p)`` the sampler reported; then

    H = −Σ_{j < k} Σ_{top} p·log p  /  log |V|

a *sum* over the ≤ k positions (not a mean), normalised by the log of the vocabulary size.
Example: two positions, each with top-2 log-probs log 0.5, log 0.5, and |V| = 4: each position
gives log 2, so H = 2·log 2 / log 4 = 1.

Branch probability (ARPO): P = clip(α + β·ΔH, 0, 1) with ΔH = H_t − H_initial; with AEPO's
consecutive-branch penalty p and l branchings in a row on the path, P·(1 − p)^l. Fixture (note
§3.4, α = 0.5, β = 0.2): ΔH = +0.5 → 0.6, ΔH = −0.5 → 0.4, ΔH = +3 → 1.0.

Global samples (AEPO entropy pre-monitoring): m = M·σ(β·(H_root − mean H_tool)), rounded and kept
in [1, M]. Example: M = 8, equal entropies → σ(0) = 0.5 → m = 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from turngym.errors import TrainerError


def segment_entropy(top_logprobs: Sequence[Sequence[tuple[int, float]]], k: int, vocab_size: int) -> float:
    """H of the first ``k`` positions of a segment (module docstring); ``top_logprobs[j]`` holds
    position j's ``(token_id, log p)`` pairs."""
    if vocab_size < 2:
        raise TrainerError(f"vocab_size={vocab_size}: normalising by log|V| needs at least 2 tokens")
    total = 0.0
    for position in top_logprobs[:k]:
        total -= sum(math.exp(lp) * lp for _, lp in position if math.isfinite(lp))
    return total / math.log(vocab_size)


def branch_probability(
    delta: float, alpha: float, beta: float, *, streak: int = 0, penalty: float = 0.0
) -> float:
    """clip(α + β·ΔH, 0, 1)·(1 − penalty)^streak (module docstring)."""
    return min(max(alpha + beta * delta, 0.0), 1.0) * (1.0 - penalty) ** streak


def global_samples(budget: int, h_root: float, h_tool_mean: float, beta: float) -> int:
    """AEPO's m = round(M·σ(β·(H_root − mean H_tool))) in [1, M]."""
    share = 1.0 / (1.0 + math.exp(-beta * (h_root - h_tool_mean)))
    return min(max(round(budget * share), 1), budget)
