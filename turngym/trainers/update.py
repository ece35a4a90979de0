"""The optimizer stage: token log-probs under the trained model and one PPO update over a batch.

``token_logprobs`` runs the model over right-padded rows and returns log π(token_j | tokens_<j) at
every position j ≥ 1 (position 0 gets 0), with the logits divided by the rollout temperature, as
the sampler did. ``ppo_update`` makes ``epochs`` passes; each pass shuffles the *trajectories*
into mini-batches of about ``mini_batch_rows`` rows (one optimizer step each), and each mini-batch
runs as micro-batches of about ``micro_batch_rows`` rows whose gradients accumulate. Both cuts keep
trajectories whole (:func:`~turngym.trainers.batching.sequence_chunks`): in ``full`` context a
trajectory is one row and the budgets are exact; in ``window:k`` a chunk takes whole trajectories
while it fits, and a trajectory with more turns than the budget is a chunk of its own. The token
weights of the loss aggregation are computed once per mini-batch and each micro-batch uses its
rows of them, so the summed micro-batch losses and their gradients equal those of the whole
mini-batch in one pass (accumulation 1 × 8 = 8 × 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from turngym.trainers.batching import TrainBatch, sequence_chunks
from turngym.trainers.losses import token_weights, total_loss
from turngym.trainers.losses.aepo import entropy_scaled_advantages, preserved_tokens


@dataclass(frozen=True)
class ModelOutput:
    """Per-position log-probs (and entropies when asked) of a batch, aligned with ``input_ids``."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None


def token_logprobs(
    model: torch.nn.Module, batch: TrainBatch, *, temperature: float = 1.0, with_entropy: bool = False
) -> ModelOutput:
    """log π(x_j | x_<j) for j ≥ 1 under ``model`` (0 at position 0)."""
    device = next(model.parameters()).device
    ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    if temperature > 0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    picked = logp_all.gather(-1, ids[:, 1:, None]).squeeze(-1)
    zero = torch.zeros_like(picked[:, :1])
    entropy = None
    if with_entropy:
        ent = -(logp_all.exp() * logp_all).sum(-1)
        entropy = torch.cat([zero, ent], dim=1)
    return ModelOutput(torch.cat([zero, picked], dim=1), entropy)


@dataclass(frozen=True)
class UpdateSettings:
    """What one PPO update needs from the config (flat, so the stage does not read the whole config)."""

    policy_loss: str = "ppo_clip"
    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = 3.0
    aggregation: str = "token-mean"
    max_len: int | None = None
    """L of ``seq-mean-token-sum-norm``: a constant per-trajectory budget of action tokens (the same
    in every context mode; Dr. GRPO's generation budget). Only that mode reads it."""
    kl_coef: float = 0.0
    kl_kind: str = "low_var_kl"
    entropy_coef: float = 0.0
    epochs: int = 1
    mini_batch_rows: int = 64
    micro_batch_rows: int = 8
    grad_clip: float = 1.0
    temperature: float = 1.0
    entropy_advantage: float = 0.0
    """AEPO's entropy-aware advantage coefficient c (0: off; :mod:`~turngym.trainers.losses.aepo`)."""
    balanced_clipping: str | None = None
    """AEPO's gradient-preserving clipping at ``all`` or ``high_entropy`` tokens (None: off)."""


def minibatch_loss(
    model: torch.nn.Module,
    batch: TrainBatch,
    settings: UpdateSettings,
    *,
    ref_logprobs: torch.Tensor | None = None,
) -> dict[str, float]:
    """Forward/backward of one mini-batch in micro-batches of whole trajectories; gradients
    accumulate in ``model``."""
    weights = token_weights(
        batch.loss_mask, settings.aggregation, seq_ids=batch.seq_ids, norm_tokens=settings.max_len
    )
    num_tokens = float(batch.loss_mask.sum().clamp(min=1))
    totals: dict[str, float] = {}
    for chunk in sequence_chunks(batch.seq_ids, settings.micro_batch_rows):
        rows = torch.tensor(chunk, dtype=torch.long)
        micro = batch.select(chunk)
        if micro.num_loss_tokens == 0:
            continue
        width = micro.input_ids.shape[1]
        weight = float(micro.loss_mask.sum()) / num_tokens
        need_entropy = (
            settings.entropy_coef > 0
            or settings.entropy_advantage > 0
            or settings.balanced_clipping == "high_entropy"
        )
        out = token_logprobs(model, micro, temperature=settings.temperature, with_entropy=need_entropy)
        device = out.logprobs.device
        ref = None if ref_logprobs is None else ref_logprobs[rows][:, :width].to(device)
        mask, advantages = micro.loss_mask.to(device), micro.advantages.to(device)
        if settings.entropy_advantage and out.entropy is not None:
            advantages = entropy_scaled_advantages(advantages, out.entropy, mask, settings.entropy_advantage)
        preserve = None
        if settings.balanced_clipping is not None:
            preserve = preserved_tokens(out.entropy, mask, settings.balanced_clipping)
        loss, stats = total_loss(
            settings.policy_loss,
            out.logprobs,
            micro.old_logprobs.to(device),
            advantages,
            mask,
            clip_low=settings.clip_low,
            clip_high=settings.clip_high,
            dual_clip=settings.dual_clip,
            aggregation=settings.aggregation,
            ref_logprobs=ref,
            kl_coef=settings.kl_coef,
            kl_kind=settings.kl_kind,
            entropy=out.entropy,
            entropy_coef=settings.entropy_coef,
            agg={"weights": weights[rows][:, :width].to(device), "seq_ids": micro.seq_ids.to(device)},
            preserve_high=preserve,
        )
        loss.backward()
        for key, value in stats.items():  # sums of losses; token-weighted means of diagnostics
            totals[key] = totals.get(key, 0.0) + (
                value if key in ("loss/policy", "loss/total") else value * weight
            )
    return totals


def ppo_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: TrainBatch,
    settings: UpdateSettings,
    *,
    generator: torch.Generator,
    ref_logprobs: torch.Tensor | None = None,
) -> dict[str, float]:
    """``settings.epochs`` passes of mini-batch steps over shuffled trajectories; returns the mean
    diagnostics."""
    model.train()
    sums: dict[str, float] = {}
    steps = 0
    for _ in range(settings.epochs):
        for rows in sequence_chunks(batch.seq_ids, settings.mini_batch_rows, generator=generator):
            mini = batch.select(rows)
            if mini.num_loss_tokens == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            ref = None if ref_logprobs is None else ref_logprobs[rows]
            stats = minibatch_loss(model, mini, settings, ref_logprobs=ref)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            stats["loss/grad_norm"] = float(grad_norm)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            steps += 1
    model.eval()
    out = {key: value / steps for key, value in sums.items()} if steps else {}
    out["loss/optimizer_steps"] = float(steps)
    return out
