"""The phases of a training run around its RL iterations (:mod:`turngym.trainers.loop`).

* :func:`resume_or_warm_start`: a run's start: :func:`restore` when it resumes, else
  :func:`warm_start` and the checkpoint of iteration 0;
* :func:`restore`: a resumed run loads its checkpoint (learner, optimizer, scheduler, RNG) and
  hands the weights to the sampling policy;
* :func:`warm_start`: a new run fine-tunes on expert demos (when ``sft`` is on), evaluates the
  result on held-out tasks (iteration 0) and keeps it as the KL reference (:data:`WARM_START`);
* :func:`checkpoint_iteration`: the resumable checkpoint after an iteration;
* :func:`evaluate_iteration`: rank 0's held-out evaluation every ``eval.every`` iterations and
  after the last one;
* :func:`write_report`: rank 0's end of a finished run: its reports, plots and final model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from turngym.agents.hf import HFPolicy
from turngym.errors import ConfigError
from turngym.reports import write_train_report
from turngym.trainers.checkpoint import REPORT_FILE, Checkpoint, restore_rng, save_checkpoint
from turngym.trainers.config import TrainConfig
from turngym.trainers.dashboard import DASHBOARD_DIR, write_dashboards
from turngym.trainers.distributed import (
    World,
    barrier,
    full_state_dict,
    load_full_state_dict,
    load_sharded,
    save_checkpoint_sharded,
)
from turngym.trainers.learner import Learner
from turngym.trainers.lora import load_model_state, model_state, save_model
from turngym.trainers.metrics import ProgressReport, format_success, open_metrics_log, plot_run, read_metrics
from turngym.trainers.rollout import evaluate
from turngym.trainers.rundir import write_env_record
from turngym.trainers.sft import expert_demos, supervised_finetune

if TYPE_CHECKING:
    from turngym.agents.vllm import VLLMPolicy

WARM_START = "warm_start.pt"
"""The post-SFT weights (the KL reference), kept in the run directory."""


def resume_or_warm_start(
    config: TrainConfig,
    ckpt: Checkpoint | None,
    policy: HFPolicy | VLLMPolicy,
    learner: Learner,
    trained: torch.nn.Module,
    progress: ProgressReport,
    world: World,
) -> tuple[int, dict[str, Any], Any]:
    """(the last iteration done, the run's history, its metrics log): a resumed run restores
    ``ckpt``; a new run warm-starts and checkpoints that as iteration 0."""
    out = Path(config.output_dir)
    history: dict[str, Any] = {}
    if ckpt is not None:
        progress.stage(f"resuming {out} after iteration {ckpt.iteration} of {config.iterations}")
        restore(ckpt, policy, learner, world)
        history.update(ckpt.history)
        log = open_metrics_log(config, world, resume_after=ckpt.iteration)
        history["resumed_at"].append(ckpt.iteration)
        return ckpt.iteration, history, log
    progress.stage(f"run directory {out}")
    log = open_metrics_log(config, world, resume_after=None)
    history.update({"sft": {}, "evals": [], "resumed_at": []})
    warm_start(config, policy, learner, trained, world, history, log, progress)
    barrier(world)
    checkpoint_iteration(config, learner, history, 0, world)
    return 0, history, log


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


def checkpoint_iteration(
    config: TrainConfig, learner: Learner, history: dict[str, Any], iteration: int, world: World
) -> None:
    """Save the learner's state and the run's ``history`` after ``iteration`` (sharded when the run
    has several processes)."""
    save = save_checkpoint_sharded if world.distributed else save_checkpoint
    save(
        Path(config.output_dir) / "checkpoints",
        iteration,
        model=learner.model,
        optimizer=learner.optimizer,
        scheduler=learner.scheduler,
        history=history,
        config_digest=config.digest(),
        keep=config.keep_checkpoints,
        **({"world": world} if world.distributed else {}),
    )


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


def write_report(
    config: TrainConfig,
    policy: HFPolicy | VLLMPolicy,
    history: dict[str, Any],
    seconds: float,
    model: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """``report.json``, ``plot.png``, ``dashboard/*.png``, ``report.md`` and ``final/`` of a finished
    run (``model``: the trained module when it is not ``policy.model``; a LoRA model saves only its
    adapter)."""
    out = Path(config.output_dir)
    evals = history["evals"]
    first, last = evals[0], evals[-1]
    report = {
        "env_id": config.env.env_id,
        "estimator": config.credit.estimator,
        "iterations": config.iterations,
        "warm_start": {k.removeprefix("eval/"): v for k, v in first.items() if k.startswith("eval/")},
        "final": {k.removeprefix("eval/"): v for k, v in last.items() if k.startswith("eval/")},
        "sft": history["sft"],
        "evals": evals,
        "resumed_at": history["resumed_at"],
        "seconds_this_process": seconds,
        "config": config.to_dict(),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    rows = read_metrics(out / "metrics.jsonl")
    plot_run(rows, out / "plot.png", f"{config.credit.estimator} on {config.env.env_id}")
    write_train_report(out, report, rows, write_dashboards(rows, out / DASHBOARD_DIR))
    save_model(model if model is not None else policy.model, out / "final")
    policy.tokenizer.save_pretrained(out / "final")
    write_env_record(out / "final", config)
    return report


def _held_out(metrics: dict[str, float]) -> str:
    return format_success(metrics["eval/success_rate"], metrics["eval/ci_low"], metrics["eval/ci_high"])
