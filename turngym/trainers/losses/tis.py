"""Truncated importance sampling (TIS): the per-token weight that corrects a loss for tokens sampled
by an older (or another) policy than the one whose log-probs π_old were recomputed.

w = min(π_old(a) / π_behaviour(a), C) = min(exp(log π_old − log π_behaviour), C), detached, at the
tokens marked ``stale`` (sampled by an older policy version); 1 elsewhere. The PPO token loss is
multiplied by w before aggregation. Sources: Yao et al., "Your efficient RL framework secretly
brings you off-policy RL training" (2025; verl's ``tis_imp_ratio_cap``: the ratio of the trainer's
recomputed old log-probs to the rollout engine's, clamped above at C). Here it corrects the turns
that APRIL's partial rollouts (Zhou et al., arXiv 2509.18521) carry over from earlier policy
versions.

Example (C = 2): log π_old = [−1, −1, −2], log π_behaviour = [−2, −0.5, −1], stale = [T, T, F]
→ ratios [e, e^−0.5, e] → w = [min(e, 2), e^−0.5, 1] = [2, 0.6065, 1].
"""

from __future__ import annotations

import torch

from turngym.errors import ConfigError


def tis_weights(
    old_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, stale: torch.Tensor, cap: float
) -> torch.Tensor:
    """Weights [B, T] (fp32, no gradient) from log-probs [B, T] and a bool mask ``stale`` [B, T]."""
    if cap <= 0:
        raise ConfigError(f"the TIS cap C must be > 0, got {cap}")
    ratio = torch.exp(old_logprobs.detach().float() - behaviour_logprobs.detach().float()).clamp(max=cap)
    return torch.where(stale.bool(), ratio, torch.ones_like(ratio))
