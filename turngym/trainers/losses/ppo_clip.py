"""PPO-clip policy loss with separate low/high clip ranges and dual-clip (Schulman et al. 2017;
DAPO's clip-higher; Ye et al. 2020's dual-clip), per token.

ρ = exp(log π − log π_old). Token loss ℓ = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A). With dual-clip
c > 1, for A < 0 the loss is capped: ℓ = min(ℓ, −c·A) (a very large ratio on a bad action cannot
blow up the update). Example: A = 1, ρ = 1.5, ε_high = 0.28 → ℓ = −1.28 (clipped); A = −1,
ρ = 5, c = 3 → unclipped −min(−5, −1.2) = 5, capped to 3.

``preserve_high`` (AEPO's gradient-preserving clipping, :mod:`~turngym.trainers.losses.aepo`): at
these tokens a ratio above 1 + ε_high is clipped to (1 + ε_high)·ρ/sg(ρ): the same loss value, but
the gradient (1 + ε_high)·∇log π·A instead of none. Example: A = 1, ρ = 1.5, ε_high = 0.28 → ℓ =
−1.28 either way; d ℓ / d log π = −1.28 instead of 0.
"""

from __future__ import annotations

from typing import Any

import torch

from turngym.trainers.losses.aggregation import aggregate
from turngym.trainers.losses.types import LossOutput, masked_mean


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = 3.0,
    aggregation: str = "token-mean",
    preserve_high: torch.Tensor | None = None,
    **agg_kwargs: Any,
) -> LossOutput:
    """Aggregated PPO-clip loss over tokens [B, T] and its diagnostics; ``preserve_high`` (bool
    [B, T]) marks the tokens whose upper clip keeps its gradient."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    bounded = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    if preserve_high is not None:
        kept = (1.0 + clip_high) * ratio / ratio.detach()
        bounded = torch.where(preserve_high & (ratio > 1.0 + clip_high), kept, bounded)
    clipped = -advantages * bounded
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip is not None:
        cap = -dual_clip * advantages
        capped = (advantages < 0) & (loss > cap)
        loss = torch.where(capped, cap, loss)
        was_clipped = was_clipped | capped
    m = mask.to(loss.dtype)
    return LossOutput(
        loss=aggregate(loss, mask, aggregation, **agg_kwargs),
        clip_fraction=masked_mean(was_clipped.to(loss.dtype), m),
        approx_kl=masked_mean(0.5 * log_ratio.detach().square(), m),
        ratio_mean=masked_mean(ratio.detach(), m),
    )
