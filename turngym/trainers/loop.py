"""``train(config)``: the RL loop, one stage per function, top to bottom.

Setup: build/load the policy (``hf:tiny`` by default) and the learner around it (dtype, gradient
checkpointing, LoRA, optimizer: :mod:`turngym.trainers.learner`), then either resume from the run's latest
checkpoint or warm-start with SFT (:mod:`turngym.trainers.sft`), evaluate that warm start on
held-out tasks and checkpoint it as iteration 0 (those phases: :mod:`turngym.trainers.phases`).
Then, per iteration:

1. ``collect_rollouts``: G rollouts per task (same task and env seed per group), rewards shaped by
   the invalid-action penalty; a group with an infrastructure failure is re-rolled, then dropped
   (the failure rule of :mod:`turngym.trainers.rollout`); with dynamic sampling, groups with equal
   returns are dropped and more rounds are rolled out (up to ``max_gen_batches``).
2. ``compute_group_advantages``: the configured estimator → one advantage per turn.
3. ``build_batch``: token rows (advantages broadcast to the policy's tokens, env tokens masked),
   then the log-probs of the current weights are recomputed as π_old.
4. ``ppo_update``: PPO epochs over shuffled mini-batches with gradient accumulation and clipping.
5. sync the rollout policy (in-process: the same module; its version is bumped), evaluate every
   ``eval.every`` iterations, log, checkpoint every ``checkpoint_every``.

At the end (:func:`~turngym.trainers.phases.write_report`): ``report.json`` (warm-start and final
held-out success with 95% Wilson intervals, config, timings), ``plot.png``, the dashboards
(``dashboard/*.png``), ``report.md`` and the final model under ``final/`` (loadable as
``hf:DIR``; its ``turngym.json`` records the env settings ``turngym eval`` then uses by default).
Every ``rollouts_every`` iterations the trained-on trajectories with their credit go to
``rollouts/`` (:mod:`turngym.trainers.rollout_log`).

The run directory is accepted before anything is written to it (a new run needs a directory
without a run, a resumed one the same settings); every stage announces itself on stderr
(:class:`~turngym.trainers.metrics.ProgressReport`).
Randomness is a function of ``(seed, iteration)``, so resuming from a checkpoint reproduces an
uninterrupted run exactly on CPU.

Under ``torchrun`` (``turngym train --nproc N``) every rank runs this function: rollouts are split
across ranks, the learner is an FSDP2-sharded copy of the model, checkpoints are sharded, and rank 0
alone evaluates and writes logs, reports and ``final/`` (:mod:`turngym.trainers.distributed`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from turngym.agents.adapters import is_adapter_dir
from turngym.agents.random_models import arch_of, is_random_spec
from turngym.errors import ConfigError
from turngym.trainers import advantages as credit
from turngym.trainers.april.rollout import PartialRollouts, turn_lags, version_lag_metrics
from turngym.trainers.arpo.attribution import attribute
from turngym.trainers.arpo.metrics import arpo_metrics
from turngym.trainers.batching import TrainBatch, build_batch, informative_groups
from turngym.trainers.checkpoint import CONFIG_FILE, REPORT_FILE, open_run
from turngym.trainers.config import TrainConfig
from turngym.trainers.distributed import World, barrier, close_world, full_state_dict, init_world
from turngym.trainers.learner import Learner, ReferencePass, build_learner, reference_pass
from turngym.trainers.losses.tis import tis_weights
from turngym.trainers.metrics import ProgressReport
from turngym.trainers.phases import (
    WARM_START,
    checkpoint_iteration,
    evaluate_iteration,
    resume_or_warm_start,
    write_report,
)
from turngym.trainers.precision import MasterWeightsAdamW
from turngym.trainers.rollout import (
    collect_rollouts,
    derive_seed,
    env_factory,
    rollout_metrics,
    shape_rewards,
    trainable,
)
from turngym.trainers.rollout_log import TokenText, rollouts_due, write_rollouts
from turngym.trainers.sft import load_policy
from turngym.trainers.update import UpdateSettings, batch_logprobs, ppo_update, update_settings
from turngym.trajectory import Trajectory


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` hands back (also written to ``report.json``)."""

    report: dict[str, Any]
    output_dir: Path
    already_finished: bool = False
    """The run had done all its iterations before this call, which changed nothing."""


def gather_groups(
    policy: Any,
    config: TrainConfig,
    iteration: int,
    world: World = World(),
    april: PartialRollouts | None = None,
) -> tuple[list[list[Trajectory]], list, dict]:
    """Stage 1 with dynamic sampling: (raw groups, shaped groups, stats); ``april``: the partial
    rollouts' carried groups (``rollout.april.enabled``)."""
    raw_all: list[list[Trajectory]] = []
    shaped_all: list[list[Trajectory]] = []
    rounds = config.rollout.max_gen_batches if config.rollout.dynamic_sampling else 1
    seen = 0
    stats: dict[str, float] = {}
    for round_ in range(rounds):
        if april is not None:
            rollouts = april.collect(policy, policy.tokenizer, config, iteration, round_)
        else:
            rollouts = collect_rollouts(policy, policy.tokenizer, config, iteration, round_, world)
        for key, value in rollouts.stats.items():
            stats[key] = stats.get(key, 0.0) + value
        raw = rollouts.groups
        shaped = shape_rewards(raw, config.credit.invalid_action_penalty)
        seen += len(raw)
        keep = informative_groups(shaped) if config.rollout.dynamic_sampling else range(len(raw))
        raw_all += [raw[g] for g in keep]
        shaped_all += [shaped[g] for g in keep]
        if len(shaped_all) >= config.rollout.groups_per_iteration:
            break
    n = config.rollout.groups_per_iteration
    stats["rollout/groups_seen"] = float(seen)
    stats["rollout/groups_kept"] = float(min(len(shaped_all), n))
    return raw_all[:n] or raw, shaped_all[:n], stats


def compute_group_advantages(config: TrainConfig, groups: list[list[Trajectory]]) -> tuple[list, dict]:
    """Stage 2: per-turn advantages and ``credit/`` statistics."""
    batch = credit.StepBatch.from_groups(groups)
    adv = credit.compute_steps(config.credit.estimator, batch, **config.credit.params)
    stats: dict[str, float] = {}
    if batch.num_steps:
        stats = {
            "credit/adv_mean": float(adv.mean()),
            "credit/adv_std": float(adv.std()),
            "credit/adv_abs_mean": float(np.abs(adv).mean()),
            "credit/zero_adv_fraction": float((np.abs(adv) < 1e-8).mean()),
        }
        similarity = config.credit.params.get("similarity")
        sizes = credit.step_group_sizes(batch, similarity)
        stats["credit/step_groups"] = float(len(sizes))
        stats["credit/step_group_size_mean"] = float(sizes.mean())
        stats["credit/singleton_fraction"] = float((sizes == 1).mean())
    return batch.split(adv), stats


def train(
    config: TrainConfig, *, resume: bool = False, on_start: Callable[[Path], None] | None = None
) -> TrainResult:
    """Run the training job ``config`` describes; see the module docstring.

    ``resume=False`` starts a new run in ``config.output_dir``, which must not hold one;
    ``resume=True`` continues the run that directory holds (same settings; ``iterations`` may grow).
    Nothing is written there before the run is accepted (:func:`~turngym.trainers.checkpoint.open_run`,
    the env built once with its settings, then the policy built); ``on_start(output_dir)`` is called
    right after. A finished run is returned as it is (``already_finished``), unchanged.
    """
    config.validate()
    world = init_world(config.model.device)
    try:
        return _train(config, resume, on_start, world)
    finally:
        close_world(world)


def check_multiprocess(config: TrainConfig) -> None:
    """Raise :class:`ConfigError` for settings a run of several processes does not support."""
    if not config.model.model.startswith("hf:"):
        raise ConfigError(f"model.model={config.model.model}: several processes train hf: models only")
    if config.model.lora.rank > 0 or config.optim.fp32_master_weights:
        raise ConfigError(
            "model.lora and optim.fp32_master_weights are not supported with several processes yet; "
            "train them in one process (without --nproc)"
        )


def _train(
    config: TrainConfig, resume: bool, on_start: Callable[[Path], None] | None, world: World
) -> TrainResult:
    if world.distributed:
        check_multiprocess(config)
    out = Path(config.output_dir)
    progress = ProgressReport(enabled=config.progress and world.main)
    opened = open_run(config, resume=resume)
    barrier(world)  # every rank has read the directory before rank 0 writes to it
    if opened.finished:
        return TrainResult(json.loads((out / REPORT_FILE).read_text()), out, already_finished=True)
    _check_model_dir(config.model.model)
    max_turns = _probe_max_turns(config)
    torch.set_num_threads(config.model.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    policy, learner = _build_policy(config, progress, on_start, world)
    trained = policy.model if world.distributed else learner.model  # what warm starts and final/ hold
    start, history, log = resume_or_warm_start(
        config, opened.checkpoint, policy, learner, trained, progress, world
    )
    reference = None
    if config.loss.kl_coef:  # the frozen warm start (LoRA: the base model), also after a resume
        warm_weights = torch.load(out / WARM_START, map_location="cpu", weights_only=True)
        reference = reference_pass(trained, warm_weights)
    _rl_iterations(
        config, policy, learner, update_settings(config, max_turns), reference,
        start=start, history=history, log=log, progress=progress, world=world,
    )  # fmt: skip
    progress.close()
    log.close()
    if not world.main:
        barrier(world)  # rank 0 writes the report
        return TrainResult(json.loads((out / REPORT_FILE).read_text()), out)
    progress.stage("writing report.json, plot.png and final/")
    report = write_report(config, policy, history, time.perf_counter() - started, trained)
    result = TrainResult(report, out)
    barrier(world)
    return result


def _check_model_dir(model: str) -> None:
    """Refuse ``hf:PATH`` / ``vllm:PATH`` without a ``config.json`` (or a LoRA adapter's
    ``adapter_config.json``; named as given) before any write; ``hf:random:ARCH`` must be known."""
    backend, _, path = model.partition(":")
    if backend == "hf" and is_random_spec(path):
        arch_of(path)
        return
    found = Path(path).expanduser()
    if path != "tiny" and not ((found / "config.json").is_file() or is_adapter_dir(found)):
        raise ConfigError(
            f"model.model={model}: {path} is not a model directory (no config.json); give a directory "
            f"written by save_pretrained, or {backend}:tiny"
        )


def _probe_max_turns(config: TrainConfig) -> int:
    """The training env's turn limit, from one env built with the run's settings (building it is
    part of accepting the run)."""
    probe = env_factory(config, "train")()
    max_turns = probe.max_turns
    probe.close()
    return max_turns


def _build_policy(
    config: TrainConfig, progress: ProgressReport, on_start: Callable[[Path], None] | None, world: World
) -> tuple[Any, Learner]:
    """The policy and its learner. Once the policy is built the run is accepted: rank 0 creates the
    run directory, records the config there and calls ``on_start``."""
    progress.stage(f"building the policy {config.model.model} on {config.model.device}")
    policy = load_policy(config)
    if world.main:
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)  # accepted: from here on the run directory is written
        (out / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        if on_start is not None:
            on_start(out)
    return policy, build_learner(policy.model, config, world)


def _rl_iterations(
    config: TrainConfig,
    policy: Any,
    learner: Learner,
    settings: UpdateSettings,
    reference: ReferencePass | None,
    *,
    start: int,
    history: dict[str, Any],
    log: Any,
    progress: ProgressReport,
    world: World,
) -> None:
    """Iterations ``start + 1`` to ``config.iterations``, each evaluated, logged and checkpointed
    when due; the partial rollouts still carried at the end (``rollout.april``) are closed."""
    if start < config.iterations:
        c, r = config, config.rollout
        progress.stage(
            f"RL: {c.iterations - start} {c.credit.estimator} iterations of {r.groups_per_iteration} "
            f"groups x {r.group_size} rollouts, held-out evaluation every {c.eval.every}"
        )
    progress.start_iterations(done=start, total=config.iterations)
    april = PartialRollouts() if config.rollout.april.enabled else None
    if april is not None and world.distributed:
        raise ConfigError("rollout.april runs in one process; launch the run without torchrun")
    try:
        for iteration in range(start + 1, config.iterations + 1):
            metrics = run_iteration(
                config, policy, learner.optimizer, learner.scheduler, settings, iteration, reference,
                learner=learner.model, world=world, april=april,
            )  # fmt: skip
            evaluate_iteration(config, policy, iteration, metrics, history, world)
            log.write(iteration, metrics)
            if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
                checkpoint_iteration(config, learner, history, iteration, world)
            progress.iteration(iteration, metrics)
    finally:
        if april is not None:  # the episodes still carried
            april.close()


def run_iteration(
    config: TrainConfig,
    policy: Any,
    optimizer: torch.optim.Optimizer | MasterWeightsAdamW,
    scheduler: Any,
    settings: UpdateSettings,
    iteration: int,
    reference: ReferencePass | None,
    *,
    learner: torch.nn.Module | None = None,
    world: World = World(),
    april: PartialRollouts | None = None,
) -> dict[str, float]:
    """Stages 1-5 of one iteration; returns its metrics. ``learner``: the module trained when it is
    not ``policy.model`` itself (the LoRA wrapper; with several processes an FSDP-sharded copy,
    synced into the policy after). ``april``: partial rollouts (their groups carried between
    iterations); π_old is then recomputed and turns of older policy versions get TIS weights."""
    model = policy.model if learner is None else learner
    t0 = time.perf_counter()
    raw, shaped, stats = gather_groups(policy, config, iteration, world, april)
    t1 = time.perf_counter()
    metrics = _collection_metrics(config, policy, raw, shaped, stats, april)
    if not shaped:
        return {**metrics, "perf/rollout_s": t1 - t0, "loss/optimizer_steps": 0.0}
    advantages, credit_stats = compute_group_advantages(config, trainable(shaped))
    t2 = time.perf_counter()
    if world.main and rollouts_due(config.rollouts_every, iteration):  # groups are gathered to every rank
        c = config.credit
        metrics["perf/rollouts_write_s"] = write_rollouts(
            config.output_dir, iteration, raw, shaped, advantages, estimator=c.estimator, params=c.params,
            token_text=TokenText(policy.tokenizer),
        )  # fmt: skip
    t_update = time.perf_counter()
    if not any(turn.action_ids for group in shaped for t in group for turn in t.turns):
        # e.g. every first prompt overflowed the context: nothing was sampled, nothing to train
        return {**metrics, **credit_stats, "perf/rollout_s": t1 - t0, "loss/optimizer_steps": 0.0}
    batch, batch_stats = _train_batch(config, policy, model, shaped, advantages, settings, april)
    metrics.update(batch_stats)
    ref = None if reference is None else reference(batch, settings)
    generator = torch.Generator().manual_seed(derive_seed(config.seed, iteration, 3))
    update = ppo_update(
        model, optimizer, scheduler, batch, settings, generator=generator, ref_logprobs=ref, world=world
    )
    # sync the rollout policy: hf shares the module (a version bump), vllm reloads, FSDP gathers
    policy.update_weights(full_state_dict(model) if world.distributed else {})
    t3 = time.perf_counter()
    rollout_s, update_s = t1 - t0, t3 - t_update
    train_tokens = float(batch.attention_mask.sum()) * settings.epochs
    return {
        **metrics,
        **credit_stats,
        **update,
        "perf/rollout_s": rollout_s,
        "perf/credit_s": t2 - t1,
        "perf/update_s": update_s,
        "perf/rollout_tokens_per_s": metrics["rollout/action_tokens"] / max(rollout_s, 1e-9),
        "perf/train_tokens_per_s": train_tokens / max(update_s, 1e-9),
        "perf/lr": float(scheduler.get_last_lr()[0]),
    }


def _collection_metrics(
    config: TrainConfig,
    policy: Any,
    raw: list[list[Trajectory]],
    shaped: list[list[Trajectory]],
    stats: dict[str, float],
    april: PartialRollouts | None,
) -> dict[str, float]:
    """Stage 1's metrics: ``rollout/`` ones and the collection ``stats``, then the ``april/``
    version lags and ``arpo/`` branching when those are on."""
    metrics = {**rollout_metrics(raw, shaped), **stats}
    if april is not None:
        metrics.update(version_lag_metrics(raw, policy.version))
    if config.rollout.strategy == "arpo":
        metrics.update(arpo_metrics(raw))
    return metrics


def _train_batch(
    config: TrainConfig,
    policy: Any,
    model: torch.nn.Module,
    shaped: list[list[Trajectory]],
    advantages: list,
    settings: UpdateSettings,
    april: PartialRollouts | None,
) -> tuple[TrainBatch, dict[str, float]]:
    """Stage 3: the token batch (ARPO: a shared prefix counts once) and its metrics. When π_old
    is recomputed (the config asks, or ``april``), the batch carries the learner's log-probs and
    ``loss/rollout_logprob_gap`` their mean gap to the sampler's; ``april`` adds TIS weights."""
    if config.rollout.strategy == "arpo":  # hard attribution: shared prefixes get the mean advantage
        shaped, advantages = attribute(config.rollout.arpo.attribution, shaped, advantages)
    batch = build_batch(shaped, advantages, policy.pad_id)
    if not (config.recomputes_logprobs or april is not None):
        return batch, {}
    current = batch_logprobs(model, batch, settings)
    mask = batch.loss_mask.bool()
    gap = (current - batch.old_logprobs)[mask].abs()
    stats = {"loss/rollout_logprob_gap": float(gap.mean()) if mask.any() else 0.0}
    if april is not None:  # turns sampled by older versions: min(π_old/π_behaviour, C)
        lags = build_batch(shaped, turn_lags(shaped, policy.version), policy.pad_id).advantages
        weights = tis_weights(current, batch.old_logprobs, lags > 0, config.rollout.april.tis_cap)
        batch = replace(batch, tis_weights=weights)
    return replace(batch, old_logprobs=current), stats
