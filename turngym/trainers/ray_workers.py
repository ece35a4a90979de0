"""Rollout workers as Ray actors (``rollout.workers: N``, the ``ray`` extra).

Each of ``N`` actors holds a policy replica (built once by a picklable ``build()`` that returns
``(policy, tokenizer)``) and runs the asynchronous agent loop (:mod:`turngym.agents.async_loop`)
over its share of the jobs, with its own envs (or ``RemoteEnv`` clients, when the env factory
makes them). :meth:`RayRollout.run` splits the jobs into ``N`` contiguous slices; job ``k`` of
the whole list keeps sampling stream ``k`` wherever it runs (``first_index``), so the trajectories
equal the in-process ones for the same seeds (exactly for the scripted policies and for ``hf``
when the batches match, see :mod:`turngym.agents.batcher`). The trajectories come back through
Ray's object store, in job order.

Weights: :meth:`RayRollout.sync` puts the learner's state dict into the object store once
(``ray.put``) and every actor loads it (``update_weights``) and takes the learner's version; the
trainer calls it whenever the learner's version changed since the last sync (after every update).

Ray itself: an already initialised Ray is used as it is; else ``ray.init()`` joins the cluster in
``RAY_ADDRESS`` (``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others,
then ``RAY_ADDRESS=HEAD:6379 turngym train ... --set rollout.workers=8``), or starts a local one.
Each actor asks for ``num_cpus`` CPUs (default 1) and ``num_gpus`` GPUs (default 0).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from turngym.agents.async_loop import AsyncSettings, run_episodes
from turngym.agents.loop import EnvFactory, Job
from turngym.agents.policy import LoopConfig
from turngym.errors import ConfigError
from turngym.trajectory import Trajectory

Builder = Callable[[], tuple[Any, Any]]
"""Returns ``(policy, tokenizer)``; runs inside each actor."""


class RolloutWorker:
    """What one actor holds: a policy replica and its tokenizer."""

    def __init__(self, build: Builder, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        self.policy, self.tokenizer = build()

    def set_weights(self, state_dict: Mapping[str, Any], version: int) -> int:
        self.policy.update_weights(state_dict)
        self.policy.version = version
        return version

    def run(
        self,
        env_factory: EnvFactory,
        jobs: Sequence[Job],
        config: LoopConfig,
        settings: AsyncSettings,
        first_index: int,
    ) -> list[Trajectory]:
        return run_episodes(
            env_factory, self.policy, self.tokenizer, jobs, config, settings, first_index=first_index
        )


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"rollout.workers needs Ray ({exc}); install the extra: pip install 'turngym[ray]'"
        ) from exc
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init()  # join the cluster RAY_ADDRESS names
        else:
            ray.init(include_dashboard=False)
    return ray


def split(count: int, parts: int) -> list[range]:
    """``parts`` contiguous index ranges covering ``0..count-1``, sizes differing by at most one.

    Example: ``split(5, 2)`` → ``[range(0, 3), range(3, 5)]``.
    """
    base, extra = divmod(count, parts)
    out, start = [], 0
    for p in range(parts):
        size = base + (p < extra)
        out.append(range(start, start + size))
        start += size
    return out


class RayRollout:
    """``workers`` Ray actors that each run the asynchronous loop over a slice of the jobs."""

    def __init__(self, workers: int, build: Builder, *, num_cpus: float = 1, num_gpus: float = 0) -> None:
        if workers < 1:
            raise ConfigError(f"RayRollout needs workers >= 1, got {workers}")
        ray = _ray()
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(RolloutWorker)
        self._ray = ray
        self.actors = [actor.remote(build) for _ in range(workers)]
        self.version: int | None = None
        """The learner version the actors hold (None: the builder's own weights)."""

    def sync(self, state_dict: Mapping[str, Any], version: int) -> None:
        """Send ``state_dict`` through the object store to every actor (once per version)."""
        if version == self.version:
            return
        ref = self._ray.put({k: v.detach().cpu() for k, v in state_dict.items()})
        self._ray.get([a.set_weights.remote(ref, version) for a in self.actors])
        self.version = version

    def run(
        self,
        env_factory: EnvFactory,
        jobs: Sequence[Job],
        config: LoopConfig,
        settings: AsyncSettings | None = None,
    ) -> list[Trajectory]:
        """The episodes of ``jobs`` in job order; each actor runs ``settings.max_concurrent`` at once."""
        s = settings or AsyncSettings()
        parts = [r for r in split(len(jobs), len(self.actors)) if len(r)]
        futures = [
            actor.run.remote(env_factory, [jobs[i] for i in part], config, s, part.start)
            for actor, part in zip(self.actors, parts, strict=False)
        ]
        return [t for chunk in self._ray.get(futures) for t in chunk]

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []


_POOLS: weakref.WeakKeyDictionary[Any, RayRollout] = weakref.WeakKeyDictionary()


def pool_for(policy: Any, workers: int, model: str) -> RayRollout:
    """The actors that mirror the trainer's ``policy`` (made on first use, synced to its version)."""
    pool = _POOLS.get(policy)
    if pool is None or len(pool.actors) != workers:
        if not model.startswith("hf:"):
            raise ConfigError(
                f"rollout.workers runs hf policy replicas; model.model={model!r} is not hf:... "
                "(set rollout.workers: 0 to sample in-process)"
            )
        pool = _POOLS[policy] = RayRollout(workers, _HFReplica(model[3:]))
    pool.sync(policy.model.state_dict(), policy.version)
    return pool


class _HFReplica:
    """Builds an ``hf`` policy replica inside an actor (``tiny`` or a model directory)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self) -> tuple[Any, Any]:
        from turngym.agents.hf import HFPolicy
        from turngym.agents.tiny import ensure_tiny

        policy = HFPolicy.from_pretrained(
            ensure_tiny() if self.target == "tiny" else self.target, num_threads=1
        )
        return policy, policy.tokenizer
