"""What every policy loss returns: the differentiable loss and detached diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossOutput:
    """A policy loss and its diagnostics (all diagnostics are detached scalars)."""

    loss: torch.Tensor
    clip_fraction: torch.Tensor
    """Share of loss tokens whose update the clip (or dual-clip) cut off."""
    approx_kl: torch.Tensor
    """Mean of ½·(log π − log π_old)² over loss tokens."""
    ratio_mean: torch.Tensor
    """Mean importance ratio over loss tokens."""


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Detached mean of ``values`` where ``mask`` is 1 (0 when the mask is empty)."""
    return (values.detach() * mask).sum() / mask.sum().clamp(min=1.0)
