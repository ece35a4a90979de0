"""How per-token losses ℓ[b, t] with mask m[b, t] become one scalar (research note §6).

* ``token-mean``:              Σ ℓm / Σ m (every token of the batch weighs the same; DAPO).
* ``seq-mean-token-mean``:     mean over sequences of (Σ_t ℓm / Σ_t m) (GRPO's original form).
* ``seq-mean-token-sum``:      mean over sequences of Σ_t ℓm (REINFORCE-aligned; Dr.Kernel).
* ``seq-mean-token-sum-norm``: Σ ℓm / T_max, T_max a constant (Dr.GRPO; verl divides by T_max only).

Sequence-level modes skip fully masked sequences in their denominator (as KernelGYM does), so a
padded or rejected row changes nothing. Fixture: lengths 1 and 3 with unit losses →
token-mean 1, seq-mean-token-mean 1, seq-mean-token-sum 2, seq-mean-token-sum-norm (T_max 4) 1.

``scale`` (global normalizers) lets gradient accumulation over micro-batches equal one big batch:
pass the token count / sequence count of the *whole* batch and sum the micro-batch losses.
"""

from __future__ import annotations

import torch

from turngym.errors import ConfigError

MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def aggregate(
    loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    *,
    max_len: int | None = None,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
) -> torch.Tensor:
    """Reduce ``loss`` [B, T] under ``mask`` [B, T] to a scalar.

    ``num_tokens`` / ``num_seqs`` replace this batch's own token / non-empty-sequence counts (use
    the full batch's counts when this is one micro-batch of several).
    """
    mask = mask.to(loss.dtype)
    masked = loss * mask
    if mode == "token-mean":
        denom = num_tokens if num_tokens is not None else mask.sum().clamp(min=1.0)
        return masked.sum() / denom
    seq_tokens = mask.sum(dim=-1)
    live = seq_tokens > 0
    seqs = num_seqs if num_seqs is not None else live.sum().clamp(min=1).to(loss.dtype)
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(dim=-1) / seq_tokens.clamp(min=1.0)
        return per_seq[live].sum() / seqs
    if mode == "seq-mean-token-sum":
        return masked.sum() / seqs
    if mode == "seq-mean-token-sum-norm":
        if max_len is None or max_len < 1:
            raise ConfigError(
                f"seq-mean-token-sum-norm divides by a constant T_max; pass max_len >= 1, got {max_len}"
            )
        return masked.sum() / max_len
    raise ConfigError(f"unknown loss aggregation {mode!r}; choose one of {MODES}")
