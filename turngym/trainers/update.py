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
mini-batch in one pass (accumulation 1 × 8 = 8 × 1). With ``world`` (several processes, an FSDP
learner: :mod:`turngym.trainers.distributed`) the micro-batches of each mini-batch are dealt
round-robin to the ranks and the sum is taken over ranks, so the step is the same.

With ``max_tokens_per_micro_batch`` the micro-batches are cut by a token budget instead
(:func:`~turngym.trainers.batching.token_budget_chunks`: trajectories sorted by length, rows ×
longest row ≤ budget), and the π_old and reference passes (:func:`batch_logprobs`) run in the same
chunks; the log-probs come from the memory-bounded head (:mod:`turngym.trainers.logprobs`) unless
``logprob_chunk_tokens`` is 0.

The stage reads :class:`UpdateSettings`, which :func:`update_settings` takes from the run's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from turngym.trainers.batching import TrainBatch, sequence_chunks, token_budget_chunks
from turngym.trainers.config import TrainConfig
from turngym.trainers.distributed import World, reduce_sums
from turngym.trainers.logprobs import chunked_sequence_logprobs, plain_sequence_logprobs
from turngym.trainers.losses import token_weights, total_loss
from turngym.trainers.losses.aepo import entropy_scaled_advantages, preserved_tokens
from turngym.trainers.precision import MasterWeightsAdamW, clip_and_step


@dataclass(frozen=True)
class ModelOutput:
    """Per-position log-probs (and entropies when asked) of a batch, aligned with ``input_ids``."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None


def token_logprobs(
    model: torch.nn.Module,
    batch: TrainBatch,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = 1024,
    vocab_chunk: int = 16384,
) -> ModelOutput:
    """log π(x_j | x_<j) for j ≥ 1 under ``model`` (0 at position 0), fp32.

    ``chunk_tokens`` > 0: the memory-bounded head of :mod:`turngym.trainers.logprobs` (0 on
    padding), also for an FSDP2-sharded model; 0: the plain path through the full [B, T, V] logits.
    """
    device = next(model.parameters()).device
    ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device)
    if chunk_tokens > 0:
        logp, ent = chunked_sequence_logprobs(
            model, ids, attn, temperature=temperature, with_entropy=with_entropy,
            chunk_tokens=chunk_tokens, vocab_chunk=vocab_chunk,
        )  # fmt: skip
    else:
        logp, ent = plain_sequence_logprobs(
            model, ids, attn, temperature=temperature, with_entropy=with_entropy
        )
    return ModelOutput(logp, ent)


def micro_batches(batch: TrainBatch, settings: UpdateSettings) -> list[list[int]]:
    """Row chunks of whole trajectories for forward passes: by ``settings.max_tokens_per_micro_batch``
    (length-sorted, padding counted) when set, else ``micro_batch_rows`` rows."""
    if settings.max_tokens_per_micro_batch is not None:
        lengths = batch.attention_mask.sum(dim=-1)
        return token_budget_chunks(batch.seq_ids, lengths, settings.max_tokens_per_micro_batch)
    return sequence_chunks(batch.seq_ids, settings.micro_batch_rows)


def batch_logprobs(model: torch.nn.Module, batch: TrainBatch, settings: UpdateSettings) -> torch.Tensor:
    """No-grad log-probs [B, T] (CPU, fp32) of the whole batch, run in micro-batches (π_old and the
    reference pass): each micro-batch's rows are cut to their own longest row, so no padding
    beyond it is computed."""
    out = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    with torch.no_grad():
        for chunk in micro_batches(batch, settings):
            micro = batch.select(chunk)
            logp = token_logprobs(
                model, micro, temperature=settings.temperature,
                chunk_tokens=settings.logprob_chunk_tokens, vocab_chunk=settings.vocab_chunk,
            ).logprobs  # fmt: skip
            out[torch.tensor(chunk), : logp.shape[1]] = logp.cpu()
    return out


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
    max_tokens_per_micro_batch: int | None = None
    """Token budget of a forward pass (rows × longest row); None: ``micro_batch_rows`` rows."""
    logprob_chunk_tokens: int = 1024
    """Positions per chunk of the log-prob head (0: the plain full-logits path)."""
    vocab_chunk: int = 16384
    """Vocabulary rows per chunk of the log-prob head."""
    entropy_advantage: float = 0.0
    """AEPO's entropy-aware advantage coefficient c (0: off; :mod:`~turngym.trainers.losses.aepo`)."""
    balanced_clipping: str | None = None
    """AEPO's gradient-preserving clipping at ``all`` or ``high_entropy`` tokens (None: off)."""


def update_settings(config: TrainConfig, max_turns: int) -> UpdateSettings:
    """The update stage's settings; ``max_turns`` (the env's turn limit) sets Dr. GRPO's constant
    L = ``rollout.max_new_tokens`` × ``max_turns`` unless ``loss.norm_tokens`` gives it."""
    loss, optim, arpo = config.loss, config.optim, config.rollout.arpo
    aepo = config.rollout.strategy == "arpo"
    return UpdateSettings(
        policy_loss=loss.policy_loss,
        clip_low=loss.clip_low,
        clip_high=loss.clip_high,
        dual_clip=loss.dual_clip,
        aggregation=loss.aggregation,
        max_len=config.loss.norm_tokens or config.rollout.max_new_tokens * max_turns,
        kl_coef=loss.kl_coef,
        kl_kind=loss.kl_kind,
        entropy_coef=loss.entropy_coef,
        epochs=optim.epochs,
        mini_batch_rows=optim.mini_batch_rows,
        micro_batch_rows=optim.micro_batch_rows,
        grad_clip=optim.grad_clip,
        temperature=config.rollout.temperature,
        max_tokens_per_micro_batch=optim.max_tokens_per_micro_batch,
        logprob_chunk_tokens=config.model.logprob_chunk_tokens,
        vocab_chunk=config.model.logprob_vocab_chunk,
        entropy_advantage=arpo.entropy_advantage if aepo else 0.0,
        balanced_clipping=arpo.balanced_clipping_tokens if aepo and arpo.balanced_clipping else None,
    )


def minibatch_loss(
    model: torch.nn.Module,
    batch: TrainBatch,
    settings: UpdateSettings,
    *,
    ref_logprobs: torch.Tensor | None = None,
    loss_scale: float = 1.0,
    world: World = World(),
) -> dict[str, float]:
    """Forward/backward of one mini-batch in micro-batches of whole trajectories; gradients
    accumulate in ``model`` (of the loss times ``loss_scale``, fp16's loss scaling).

    With several ranks, rank r runs micro-batches r, r + N, ...; its loss is scaled by N (FSDP
    averages gradients over ranks) and a rank short of a micro-batch runs micro-batch 0 with weight 0,
    so every rank makes the same collective calls. The returned sums are over all ranks.
    """
    weights = token_weights(
        batch.loss_mask, settings.aggregation, seq_ids=batch.seq_ids, norm_tokens=settings.max_len
    )
    num_tokens = float(batch.loss_mask.sum().clamp(min=1))
    totals: dict[str, float] = {}
    chunks = [c for c in micro_batches(batch, settings) if batch.select(c).num_loss_tokens]
    for index in range(world.rank, -(-len(chunks) // world.size) * world.size, world.size):
        real = index < len(chunks)
        chunk = chunks[index if real else 0]
        micro = batch.select(chunk)
        weight = float(micro.loss_mask.sum()) / num_tokens if real else 0.0
        loss, stats = _micro_batch_loss(model, micro, chunk, weights, settings, ref_logprobs)
        (loss * (loss_scale * world.size if real else 0.0)).backward()
        for key, value in stats.items():  # sums of losses; token-weighted means of diagnostics
            totals[key] = totals.get(key, 0.0) + (
                (value if real else 0.0) if key in ("loss/policy", "loss/total") else value * weight
            )
    return reduce_sums(totals, world)


def _micro_batch_loss(
    model: torch.nn.Module,
    micro: TrainBatch,
    chunk: list[int],
    weights: torch.Tensor,
    settings: UpdateSettings,
    ref_logprobs: torch.Tensor | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of ``micro`` (the mini-batch's rows ``chunk``) and its diagnostics
    (:func:`~turngym.trainers.losses.total_loss`), aggregated with those rows of the mini-batch's
    token ``weights``; AEPO's entropy-scaled advantages and preserved tokens when those are on."""
    rows = torch.tensor(chunk, dtype=torch.long)
    width = micro.input_ids.shape[1]
    need_entropy = (
        settings.entropy_coef > 0
        or settings.entropy_advantage > 0
        or settings.balanced_clipping == "high_entropy"
    )
    out = token_logprobs(
        model, micro, temperature=settings.temperature, with_entropy=need_entropy,
        chunk_tokens=settings.logprob_chunk_tokens, vocab_chunk=settings.vocab_chunk,
    )  # fmt: skip
    device = out.logprobs.device
    ref = None if ref_logprobs is None else ref_logprobs[rows][:, :width].to(device)
    mask, advantages = micro.loss_mask.to(device), micro.advantages.to(device)
    if settings.entropy_advantage and out.entropy is not None:
        advantages = entropy_scaled_advantages(advantages, out.entropy, mask, settings.entropy_advantage)
    preserve = None
    if settings.balanced_clipping is not None:
        preserve = preserved_tokens(out.entropy, mask, settings.balanced_clipping)
    return total_loss(
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
        tis_weights=None if micro.tis_weights is None else micro.tis_weights.to(device),
    )


def ppo_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | MasterWeightsAdamW,
    scheduler: Any,
    batch: TrainBatch,
    settings: UpdateSettings,
    *,
    generator: torch.Generator,
    ref_logprobs: torch.Tensor | None = None,
    world: World = World(),
) -> dict[str, float]:
    """``settings.epochs`` passes of mini-batch steps over shuffled trajectories; returns the mean
    diagnostics. Every rank of ``world`` passes the same batch and generator state."""
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
            scale = optimizer.loss_scale if isinstance(optimizer, MasterWeightsAdamW) else 1.0
            stats = minibatch_loss(model, mini, settings, ref_logprobs=ref, loss_scale=scale, world=world)
            grad_norm = clip_and_step(optimizer, model, settings.grad_clip)
            if scheduler is not None:
                scheduler.step()
            stats["loss/grad_norm"] = grad_norm
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            steps += 1
    model.eval()
    out = {key: value / steps for key, value in sums.items()} if steps else {}
    out["loss/optimizer_steps"] = float(steps)
    return out
