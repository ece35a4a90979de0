"""Policy losses (one per module) and :func:`total_loss`, which adds the optional terms.

total = policy_loss + kl_coef · agg(KL(π‖π_ref)) − entropy_coef · agg(H(π))

with the same aggregation for every term; ``agg`` holds its keyword arguments (``seq_ids``,
``norm_tokens``, or a micro-batch's rows of the mini-batch's ``weights``; see ``aggregation``).
Policy losses by name: ``ppo_clip`` (clip-higher, dual-clip) and ``gspo`` (sequence-level ratio).
Each returns a :class:`LossOutput`; :func:`total_loss` also returns detached diagnostics as floats
under ``loss/`` names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from turngym.errors import ConfigError
from turngym.trainers.losses.aggregation import MODES, aggregate, token_weights
from turngym.trainers.losses.gspo import gspo_loss
from turngym.trainers.losses.kl import KINDS, kl_penalty
from turngym.trainers.losses.ppo_clip import ppo_clip_loss
from turngym.trainers.losses.types import LossOutput, masked_mean

POLICY_LOSSES: dict[str, Callable[..., LossOutput]] = {"ppo_clip": ppo_clip_loss, "gspo": gspo_loss}


def total_loss(
    name: str,
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
    aggregation: str = "token-mean",
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    kl_kind: str = "low_var_kl",
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    agg: dict[str, Any] | None = None,
    preserve_high: torch.Tensor | None = None,
    tis_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The differentiable loss and its diagnostics (``loss/policy``, ``loss/kl``, ...);
    ``preserve_high``: AEPO's gradient-preserving clipping at those tokens; ``tis_weights``: the
    per-token truncated importance weights of partial rollouts (both ``ppo_clip`` only)."""
    extra = _policy_options(name, dual_clip, preserve_high, tis_weights)
    agg = dict(agg or {})
    out = POLICY_LOSSES[name](
        logprobs,
        old_logprobs,
        advantages,
        mask,
        clip_low=clip_low,
        clip_high=clip_high,
        aggregation=aggregation,
        **extra,
        **agg,
    )
    loss = out.loss
    m = mask.to(logprobs.dtype)
    stats = {
        "loss/policy": float(out.loss.detach()),
        "loss/clip_fraction": float(out.clip_fraction),
        "loss/approx_kl": float(out.approx_kl),
        "loss/ratio_mean": float(out.ratio_mean),
    }
    if kl_coef:
        if ref_logprobs is None:
            raise ConfigError("kl_coef > 0 needs the reference policy's logprobs; set kl_coef=0 or pass them")
        kl = kl_penalty(logprobs, ref_logprobs, kl_kind)
        loss = loss + kl_coef * aggregate(kl, mask, aggregation, **agg)
        stats["loss/kl_ref"] = float(masked_mean(kl, m))
    if entropy is not None:
        stats["loss/entropy"] = float(masked_mean(entropy, m))
        if entropy_coef:
            loss = loss - entropy_coef * aggregate(entropy, mask, aggregation, **agg)
    if tis_weights is not None:
        stats["loss/tis_weight_mean"] = float(masked_mean(tis_weights, m))
    stats["loss/total"] = float(loss.detach())
    return loss, stats


def _policy_options(
    name: str, dual_clip: float | None, preserve_high: torch.Tensor | None, tis_weights: torch.Tensor | None
) -> dict[str, Any]:
    """The keyword arguments of policy loss ``name`` beyond the shared ones; raises
    :class:`ConfigError` for an unknown loss, or options that only ``ppo_clip`` takes."""
    if name not in POLICY_LOSSES:
        raise ConfigError(f"unknown policy loss {name!r}; choose one of {sorted(POLICY_LOSSES)}")
    if preserve_high is not None and name != "ppo_clip":
        raise ConfigError(f"gradient-preserving clipping applies to ppo_clip, not {name!r}")
    extra: dict[str, Any] = {"dual_clip": dual_clip} if name == "ppo_clip" else {}
    if preserve_high is not None:
        extra["preserve_high"] = preserve_high
    if tis_weights is not None:
        if name != "ppo_clip":
            raise ConfigError(f"truncated importance weights apply to ppo_clip, not {name!r}")
        extra["token_weights"] = tis_weights
    return extra


__all__ = [
    "KINDS",
    "MODES",
    "POLICY_LOSSES",
    "LossOutput",
    "aggregate",
    "gspo_loss",
    "kl_penalty",
    "ppo_clip_loss",
    "token_weights",
    "total_loss",
]
