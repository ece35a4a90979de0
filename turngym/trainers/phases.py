"""The phases of a training run around its RL iterations (:mod:`turngym.trainers.loop`).

* :func:`restore`: a resumed run loads its checkpoint (learner, optimizer, scheduler, RNG) and
  hands the weights to the sampling policy;
* :func:`warm_start`: a new run fine-tunes on expert demos (when ``sft`` is on), evaluates the
  result on held-out tasks (iteration 0) and keeps it as the KL reference (:data:`WARM_START`);
* :func:`evaluate_iteration`: rank 0's held-out evaluation every ``eval.every`` iterations and
  after the last one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from turngym.agents.hf import HFPolicy
from turngym.errors import ConfigError
from turngym.trainers.checkpoint import Checkpoint, restore_rng
from turngym.trainers.config import TrainConfig
from turngym.trainers.distributed import World, full_state_dict, load_full_state_dict, load_sharded
from turngym.trainers.learner import Learner
from turngym.trainers.lora import load_model_state, model_state
from turngym.trainers.metrics import ProgressReport, format_success
from turngym.trainers.rollout import evaluate
from turngym.trainers.sft import expert_demos, supervised_finetune

if TYPE_CHECKING:
    from turngym.agents.vllm import VLLMPolicy

WARM_START = "warm_start.pt"
"""The post-SFT weights (the KL reference), kept in the run directory."""


def restore(ckpt: Checkpoint, policy: HFPolicy | VLLMPolicy, learner: Learner, world: World) -> None:
    """Load a checkpoint's learner, optimizer, scheduler and RNG states, and the policy's weights."""
    model, optimizer = learner.model, learner.optimizer
    if ckpt.sharded != world.distributed:
        kind = "several processes (resume it with --nproc)" if ckpt.sharded else "one process (no --nproc)"
        raise ConfigError(f"{ckpt.path} was written by {kind}")
    if ckpt.sharded:
        load_sharded(ckpt.path, model, optimizer)
        policy.update_weights(full_state_dict(model))
    else:
        load_model_state(model, ckpt.model)
        policy.update_weights({})  # a sampler apart from the learner (vllm) gets the restored weights
        optimizer.load_state_dict(ckpt.optimizer)
    learner.scheduler.load_state_dict(ckpt.scheduler)
    restore_rng(ckpt.rng)


def warm_start(
    config: TrainConfig,
    policy: HFPolicy | VLLMPolicy,
    learner: Learner,
    trained: torch.nn.Module,
    world: World,
    history: dict[str, Any],
    log: Any,
    progress: ProgressReport,
) -> None:
    """A new run's start: the SFT warm start (when enabled), its held-out evaluation (iteration 0)
    and the warm-start weights the KL reference is read from."""
    if config.sft.enabled:
        progress.stage(
            f"SFT warm start: {config.sft.steps} steps on {config.sft.demos} expert demos of "
            f"{config.env.env_id}"
        )
        t0 = time.perf_counter()
        history["sft"] = supervised_finetune(  # every rank the same steps on its own full copy
            policy.model, policy.pad_id, expert_demos(policy.tokenizer, config), config
        )
        if world.distributed:
            load_full_state_dict(learner.model, policy.model.state_dict())
        history["sft"]["sft/seconds"] = time.perf_counter() - t0
        sft = history["sft"]
        progress.stage(
            f"SFT: loss {sft.get('sft/loss_first', 0.0):.3f} -> {sft.get('sft/loss_last', 0.0):.3f} "
            f"in {sft['sft/seconds']:.0f} s"
        )
    policy.update_weights({})
    if world.main:
        progress.stage(f"evaluating the warm start on {config.eval.episodes} held-out episodes")
        warm = {**evaluate(policy, policy.tokenizer, config), **history["sft"]}
        progress.stage(f"warm start: held-out success {_held_out(warm)}")
        history["evals"].append({"iteration": 0, **warm})
        log.write(0, warm)
        torch.save(model_state(trained), Path(config.output_dir) / WARM_START)


def evaluate_iteration(
    config: TrainConfig,
    policy: HFPolicy | VLLMPolicy,
    iteration: int,
    metrics: dict[str, float],
    history: dict[str, Any],
    world: World,
) -> None:
    """Rank 0 evaluates every ``eval.every`` iterations and after the last one, into ``metrics``."""
    if not world.main or (iteration % config.eval.every and iteration != config.iterations):
        return
    t0 = time.perf_counter()
    result = evaluate(policy, policy.tokenizer, config)
    metrics.update(result)
    metrics["perf/eval_s"] = time.perf_counter() - t0
    history["evals"].append({"iteration": iteration, **result})


def _held_out(metrics: dict[str, float]) -> str:
    return format_success(metrics["eval/success_rate"], metrics["eval/ci_low"], metrics["eval/ci_high"])
