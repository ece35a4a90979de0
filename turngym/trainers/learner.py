"""The learner side of a run: the trained module, its optimizer and LR schedule, the KL reference
pass and the final save, as ``model.*`` and ``optim.*`` configure them.

* ``model.gradient_checkpointing``: ``transformers``' per-layer activation checkpointing
  (non-reentrant), active in the learner's training passes only (sampling runs in eval mode).
* ``model.lora.rank`` > 0: the policy's module gets a LoRA adapter in place
  (:mod:`turngym.trainers.lora`); the sampler and the learner share it, and :attr:`Learner.model`
  is the ``peft`` wrapper (adapter-only checkpoints, reference with the adapter off).
* several processes (``world``, :mod:`turngym.trainers.distributed`): the learner is an FSDP2-sharded
  copy of the policy's module (the training loop refuses LoRA and fp32 master weights there).
* the optimizer is AdamW over the trainable weights, with fp32 master weights when
  ``optim.fp32_master_weights`` (:mod:`turngym.trainers.precision`), and a linear warm-up.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from turngym.trainers.batching import TrainBatch
from turngym.trainers.config import TrainConfig
from turngym.trainers.distributed import World, shard
from turngym.trainers.lora import apply_lora, is_lora, reference_logprobs
from turngym.trainers.precision import MasterWeightsAdamW, build_optimizer
from turngym.trainers.update import UpdateSettings, batch_logprobs

ReferencePass = Callable[[TrainBatch, UpdateSettings], torch.Tensor]
"""Log-probs [B, T] of a batch under the KL reference."""


@dataclass(frozen=True)
class Learner:
    """What trains: the module (the ``peft`` wrapper with LoRA), its optimizer and LR schedule."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | MasterWeightsAdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR


def base_spec(model_spec: str) -> str:
    """What a LoRA adapter records as its base: ``random:<arch>`` or the model directory."""
    spec = model_spec.partition(":")[2]
    if spec == "tiny":
        from turngym.agents.tiny import tiny_path

        return str(tiny_path())
    return spec if spec.startswith("random:") else str(Path(spec).expanduser().resolve())


def enable_checkpointing(module: torch.nn.Module) -> None:
    """Non-reentrant activation checkpointing of every decoder layer (``transformers`` ≥ 5 names it
    ``activation_checkpointing_enable``; older releases ``gradient_checkpointing_enable``)."""
    hf: Any = module
    if hasattr(hf, "activation_checkpointing_enable"):
        hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def build_learner(module: torch.nn.Module, config: TrainConfig, world: World = World()) -> Learner:
    """Checkpointing and LoRA on the policy's ``module`` (in place), or an FSDP2-sharded copy of it
    with several processes, then the optimizer."""
    m, o = config.model, config.optim
    if m.gradient_checkpointing:
        enable_checkpointing(module)
    model = shard(copy.deepcopy(module), world) if world.distributed else module
    if m.lora.rank > 0:
        lora = m.lora
        model = apply_lora(
            module, rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout,
            target_modules=lora.target_modules, base=base_spec(m.model),
        )  # fmt: skip
    optimizer, inner = build_optimizer(
        model, lr=o.lr, weight_decay=o.weight_decay, fp32_master=o.fp32_master_weights
    )
    warmup = max(o.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(inner, lambda step: min(1.0, (step + 1) / warmup))
    return Learner(model, optimizer, scheduler)


def reference_pass(model: torch.nn.Module, warm_start: dict[str, Any] | None) -> ReferencePass:
    """The KL reference's log-prob pass: with LoRA the same module with the adapter off (no copy);
    otherwise a frozen copy of ``model`` holding the ``warm_start`` weights."""
    if is_lora(model):
        return lambda batch, settings: reference_logprobs(model, lambda m: batch_logprobs(m, batch, settings))
    frozen = copy.deepcopy(model).eval()
    if warm_start is not None:
        frozen.load_state_dict(warm_start)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return lambda batch, settings: batch_logprobs(frozen, batch, settings)
