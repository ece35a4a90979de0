"""Stage 1: roll out groups with the agent loop, shape rewards, and evaluate on held-out tasks.

A group is G episodes of one training task started from the same task id and env seed; the
episodes of an iteration run in the asynchronous loop (``rollout.engine: async``, at most
``rollout.max_concurrent_episodes`` at once; :mod:`turngym.agents.async_loop`) or in one lock-step
batch (``lockstep``: one ``generate`` call per turn). Task ids and sampling
seeds are pure functions of ``(run seed, iteration, round, attempt)``, so a resumed run draws
exactly the tasks and tokens an uninterrupted one would; inside a batch every episode draws its own
stream (see :mod:`turngym.agents.loop`). With ``rollout.strategy: arpo`` a group is instead the M
trajectories of ARPO's branching rollout (:mod:`turngym.trainers.arpo.rollout`).

The failure rule: an episode that ended in an infrastructure failure (``env_error``,
``policy_error``, ``timeout``: :attr:`~turngym.trajectory.StopReason.is_failure`) says nothing
about the policy, so it is never trained on, and neither are its group mates (a group's baseline
needs all G). The whole group is rolled out again, same task and env seed, fresh sampling seeds, up
to ``rollout.max_retries`` times; a group that still fails is dropped. The metrics count
``rollout/retried_groups``, ``rollout/dropped_groups`` and ``rollout/failures/<reason>`` (failed
episodes by stop reason, over every attempt).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from turngym.agents.async_loop import AsyncSettings, run_episodes
from turngym.agents.baselines import wilson_interval
from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, Policy, SamplingParams, derive_seed
from turngym.envs import make
from turngym.envs.core import TextEnv
from turngym.errors import TrainerError
from turngym.trainers.arpo.metrics import tool_call_metrics
from turngym.trainers.arpo.rollout import run_branching
from turngym.trainers.config import EvalConfig, RolloutConfig, TrainConfig
from turngym.trainers.distributed import World, gather, share
from turngym.trajectory import Trajectory


def env_factory(config: TrainConfig, split: str) -> Callable[[], TextEnv]:
    """Zero-argument factory of the configured env on ``split``."""
    kwargs = {**config.env.kwargs, "split": split}
    return lambda: make(config.env.env_id, **kwargs)


def loop_config(
    rollout: RolloutConfig,
    env_id: str,
    *,
    temperature: float,
    seed: int,
    entropies: bool,
    batch: int,
    top_logprobs: int = 0,
) -> LoopConfig:
    sampling = SamplingParams(
        temperature=temperature,
        max_new_tokens=rollout.max_new_tokens,
        seed=seed,
        entropies=entropies,
        top_logprobs=top_logprobs,
    )
    return LoopConfig(
        context=rollout.context,
        sampling=sampling,
        max_context_tokens=rollout.max_context_tokens,
        batch_size=max(batch, 1),
        env_id=env_id,
        episode_timeout_s=rollout.episode_timeout_s,
        chat_template_kwargs=rollout.chat_template_kwargs,
    )


def run_jobs(
    config: TrainConfig,
    factory: Callable[[], TextEnv],
    policy: Policy,
    tokenizer: Any,
    jobs: Sequence[tuple[int, int]],
    loop: LoopConfig,
    slots: int | None = None,
) -> list[Trajectory]:
    """``jobs`` through the configured engine, in job order (``slots``: episodes in flight, default
    ``rollout.max_concurrent_episodes``, per Ray worker when ``rollout.workers`` > 0)."""
    r = config.rollout
    if r.engine == "lockstep":
        return run_batch(factory, policy, tokenizer, jobs, loop)
    settings = AsyncSettings(max_concurrent=slots or r.max_concurrent_episodes, max_wait_s=r.batch_wait_s)
    if r.workers:
        from turngym.trainers.ray_workers import pool_for

        return pool_for(policy, r.workers, config.model.model).run(factory, jobs, loop, settings)
    return run_episodes(factory, policy, tokenizer, jobs, loop, settings)


@dataclass(frozen=True)
class Rollouts:
    """One round's groups that may be trained on, in task order, and what it took to get them."""

    groups: list[list[Trajectory]]
    stats: dict[str, float]


def collect_rollouts(
    policy: Policy,
    tokenizer: Any,
    config: TrainConfig,
    iteration: int,
    round_: int = 0,
    world: World = World(),
) -> Rollouts:
    """Up to ``groups_per_iteration`` groups of ``group_size`` trajectories without a failure.

    With several processes (``world``) each rank plays its share of the groups with sampling seeds
    of its own, and every rank gets all the groups (in group order) and the summed statistics.
    """
    r = config.rollout
    rng = np.random.default_rng([config.seed, iteration, round_])
    tasks = rng.choice(config.env.train_tasks, size=r.groups_per_iteration, replace=False)
    jobs = [(int(task), derive_seed(config.seed, iteration, round_, int(task))) for task in tasks]
    done: dict[int, list[Trajectory]] = {}
    failures: Counter[str] = Counter()
    pending = share(range(len(jobs)), world)
    retried: set[int] = set()
    for attempt in range(r.max_retries + 1):
        if not pending:
            break
        seed_parts = (config.seed, iteration, round_, 7) + ((attempt,) if attempt else ())
        seed_parts += (world.rank, world.size) if world.distributed else ()
        groups = _roll(policy, tokenizer, config, [jobs[g] for g in pending], seed_parts)
        still = []
        for g, group in zip(pending, groups, strict=True):
            failed = [t.stop_reason.value for t in group if t.stop_reason.is_failure]
            failures.update(failed)
            if failed:
                still.append(g)
                retried.add(g)
            else:
                task, seed = jobs[g]
                meta = {"group": f"{task}:{seed}", "attempt": attempt}
                done[g] = [replace(t, metadata={**t.metadata, **meta}) for t in group]
        pending = still
    counts: Counter[str] = Counter()
    for ((rank_done, retried_n, dropped_n, rank_failures),) in gather(
        [(done, len(retried), len(pending), dict(failures))], world
    ):
        done.update(rank_done)
        counts.update({"rollout/retried_groups": retried_n, "rollout/dropped_groups": dropped_n})
        counts.update({f"rollout/failures/{reason}": n for reason, n in rank_failures.items()})
    stats = {key: float(counts.get(key, 0)) for key in ("rollout/retried_groups", "rollout/dropped_groups")}
    stats.update({key: float(n) for key, n in sorted(counts.items()) if key.startswith("rollout/failures/")})
    return Rollouts([done[g] for g in sorted(done)], stats)


def _roll(
    policy: Policy,
    tokenizer: Any,
    config: TrainConfig,
    jobs: list[tuple[int, int]],
    seed_parts: tuple[int, ...],
) -> list[list[Trajectory]]:
    """One group per job: G independent rollouts through the configured engine (:func:`run_jobs`),
    or ARPO's M branched ones (``rollout.strategy``; the branching rollout is a loop of its own)."""
    r = config.rollout
    arpo = r.strategy == "arpo"
    size = r.arpo.budget_of(r.group_size) if arpo else r.group_size
    cfg = loop_config(
        r,
        config.env.env_id,
        temperature=r.temperature,
        seed=derive_seed(*seed_parts),
        entropies=config.credit.estimator == "empg",
        batch=len(jobs) * size,
        top_logprobs=r.arpo.top_logprobs if arpo else 0,
    )
    factory = env_factory(config, "train")
    if arpo:
        rng = np.random.default_rng([*seed_parts, 17])
        return run_branching(factory, policy, tokenizer, jobs, cfg, r.arpo, budget=size, rng=rng)
    trajs = run_jobs(config, factory, policy, tokenizer, [job for job in jobs for _ in range(size)], cfg)
    return [trajs[k * size : (k + 1) * size] for k in range(len(jobs))]


def trainable(groups: Sequence[Sequence[Trajectory]]) -> list[list[Trajectory]]:
    """``groups`` unchanged; raises :class:`TrainerError` when a trajectory ended in a failure."""
    bad = [t.stop_reason.value for g in groups for t in g if t.stop_reason.is_failure]
    if bad:
        raise TrainerError(
            f"{len(bad)} trajectories that ended in an infrastructure failure ({sorted(set(bad))}) "
            "reached the update; failed groups must be re-rolled or dropped by collect_rollouts"
        )
    return [list(g) for g in groups]


def shape_rewards(groups: Sequence[Sequence[Trajectory]], invalid_penalty: float) -> list[list[Trajectory]]:
    """Subtract ``invalid_penalty`` from the reward of every turn the env marked invalid."""
    if not invalid_penalty:
        return [list(g) for g in groups]
    return [
        [
            replace(
                t,
                turns=tuple(
                    replace(turn, reward=turn.reward - invalid_penalty)
                    if turn.info.get("invalid_action")
                    else turn
                    for turn in t.turns
                ),
            )
            for t in group
        ]
        for group in groups
    ]


def evaluate(
    policy: Policy, tokenizer: Any, config: TrainConfig, eval_cfg: EvalConfig | None = None
) -> dict[str, float]:
    """Success on held-out tasks ``0..episodes-1`` of the ``test`` split, with a 95% Wilson interval."""
    e = eval_cfg or config.eval
    jobs = [(k, derive_seed(config.seed, 99, k)) for k in range(e.episodes)]
    cfg = loop_config(
        config.rollout,
        config.env.env_id,
        temperature=e.temperature,
        seed=derive_seed(config.seed, 99),
        entropies=False,
        batch=e.batch_size,
    )
    trajs = run_jobs(config, env_factory(config, "test"), policy, tokenizer, jobs, cfg, slots=e.batch_size)
    failed = sum(t.stop_reason.is_failure for t in trajs)
    wins = sum(t.won for t in trajs)
    calls = sum(episode_tool_calls(t) for t in trajs)
    low, high = wilson_interval(wins, len(trajs))
    turns = sum(len(t.turns) for t in trajs)
    invalid = sum(bool(turn.info.get("invalid_action")) for t in trajs for turn in t.turns)
    return {
        "eval/success_rate": wins / len(trajs) if trajs else 0.0,
        "eval/ci_low": low,
        "eval/ci_high": high,
        "eval/episodes": float(len(trajs)),
        "eval/mean_turns": turns / len(trajs) if trajs else 0.0,
        "eval/invalid_rate": invalid / turns if turns else 0.0,
        "eval/failed_episodes": float(failed),
        "eval/env_tool_calls": calls / len(trajs) if trajs else 0.0,
    }


def episode_tool_calls(trajectory: Trajectory) -> float:
    """Tool calls of an episode as its env counts them: ``metrics['tool_calls']`` of the episode's
    last ``info`` (Calculator and KeyDoor report it; 0 for an env that does not)."""
    return float(trajectory.metadata.get("metrics", {}).get("tool_calls", 0.0))


def rollout_metrics(
    raw: Sequence[Sequence[Trajectory]], shaped: Sequence[Sequence[Trajectory]]
) -> dict[str, float]:
    """``rollout/`` and ``reward/`` numbers of one iteration's groups; ``rollout/token_nll`` (mean
    −log p of the sampled tokens, an unbiased estimate of the policy's per-token entropy) when the
    policy reports log-probs, ``rollout/env_tool_calls`` (per episode, as the env counts them)."""
    flat = [t for g in raw for t in g]
    n = max(len(flat), 1)
    turns = [len(t.turns) for t in flat]
    tokens = sum(len(turn.action_ids) for t in flat for turn in t.turns)
    invalid = sum(bool(turn.info.get("invalid_action")) for t in flat for turn in t.turns)
    logprobs = [lp for t in flat for turn in t.turns for lp in turn.action_logprobs]
    extra = {"rollout/token_nll": -sum(logprobs) / len(logprobs)} if logprobs else {}
    return {
        **extra,
        "rollout/episodes": float(len(flat)),
        "rollout/success_rate": sum(t.won for t in flat) / n,
        "rollout/mean_turns": sum(turns) / n,
        "rollout/invalid_rate": invalid / max(sum(turns), 1),
        "rollout/action_tokens": float(tokens),
        "rollout/env_tool_calls": sum(episode_tool_calls(t) for t in flat) / n,
        "reward/mean_return": sum(t.total_reward for t in flat) / n,
        "reward/shaped_mean": sum(t.total_reward for g in shaped for t in g) / n,
        **tool_call_metrics(raw),
    }
