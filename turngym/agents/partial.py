"""Partial rollouts on the asynchronous loop (:mod:`turngym.agents.async_loop`).

:func:`run_partial_episodes` (partial rollouts, :mod:`turngym.trainers.april`) stops early: once its
``stop()`` says so, episodes stop at their next turn boundary as :class:`Paused` (env open, turns
kept), which a later call plays on; every turn records the policy version that sampled it.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from turngym.agents.async_loop import AsyncSettings, _batcher, _positional_slots, _run_sync, _token_episode
from turngym.agents.loop import EnvFactory, Job, _Episode
from turngym.agents.policy import Completion, LoopConfig, Policy
from turngym.trajectory import Trajectory, Turn

POLICY_VERSION = "policy_version"
"""Key of a turn's ``info`` that :func:`run_partial_episodes_async` stamps with the policy's
``version`` when the turn's completion was requested."""


@dataclass
class Paused:
    """An episode that :func:`run_partial_episodes_async` stopped at a turn boundary: its env is
    still open and its turns are kept; pass it back as a start to play on, or :meth:`close` it."""

    episode: _Episode
    elapsed: float
    """Seconds the episode had run (its timeout budget continues from here)."""

    @property
    def job(self) -> Job:
        return self.episode.job

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(self.episode.turns)

    def close(self) -> None:
        self.episode.env.close()


@dataclass(frozen=True)
class _Partial:
    """How the token episodes of a partial run resume, stop and stamp their turns."""

    resume: dict[int, Paused]
    stop: Callable[[], bool]

    def resumed(self, k: int) -> _Episode | None:
        """Job ``k``'s paused episode to play on (None: start it afresh)."""
        paused = self.resume.get(k)
        if paused is None:
            return None
        paused.episode.started = time.monotonic() - paused.elapsed  # the pause does not count as episode time
        return paused.episode

    def pause(self, ep: _Episode) -> Paused:
        return Paused(ep, time.monotonic() - ep.started)

    def stamp(self, ep: _Episode, version: Any) -> None:
        """Record ``version`` in the ``info`` of ``ep``'s last turn."""
        turn = ep.turns[-1]
        ep.turns[-1] = replace(turn, info={**turn.info, POLICY_VERSION: version})


async def run_partial_episodes_async(
    env_factory: EnvFactory,
    policy: Policy,
    tokenizer: Any,
    starts: Sequence[Job | Paused],
    config: LoopConfig,
    stop: Callable[[], bool],
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory | Paused]:
    """Episodes that stop early: each start is a job or a :class:`Paused` episode to play on.

    Once ``stop()`` is True no slot starts another start, and every episode in flight stops at its
    next turn boundary (the completion it awaits is still played). The result, in start order:
    the :class:`Trajectory` of each finished episode, a :class:`Paused` for each stopped one (env
    open) and the start itself (job or :class:`Paused`) for each that did not run. Each turn's
    ``info`` gets :data:`POLICY_VERSION`. Cancelled or failing, the run closes every env, those of
    the :class:`Paused` starts included.
    """
    s = settings or AsyncSettings()
    resume = {k: start for k, start in enumerate(starts) if isinstance(start, Paused)}
    partial = _Partial(resume, stop)
    jobs = [start.job if isinstance(start, Paused) else start for start in starts]
    batcher = _batcher(policy, config, s)
    pool = concurrent.futures.ThreadPoolExecutor(s.env_threads or s.max_concurrent, "turngym-env")

    started: set[int] = set()
    paused: list[Paused] = []

    async def episode(k: int) -> Trajectory | Paused:
        started.add(k)
        batcher.enter()
        try:
            return await _token_episode(
                pool, env_factory, policy, tokenizer, jobs[k], k, config, batcher_complete, partial
            )
        finally:
            batcher.leave()

    async def batcher_complete(k: int, prompt: list[int], seed: int | None, env: Any) -> Completion:
        return await batcher.complete(k, prompt, seed, env)

    def finished(result: Trajectory | Paused) -> None:
        if isinstance(result, Paused):
            paused.append(result)
        elif on_episode is not None:
            on_episode(result)

    try:
        results = await _positional_slots(len(starts), s.max_concurrent, episode, finished, stop)
    except BaseException:  # episodes in flight closed their envs; close the paused and unstarted
        for held in paused + [p for k, p in resume.items() if k not in started]:
            held.close()
        raise
    finally:
        await batcher.aclose()
        pool.shutdown(wait=True)
    return [start if result is None else result for start, result in zip(starts, results, strict=True)]


def run_partial_episodes(
    env_factory: EnvFactory,
    policy: Policy,
    tokenizer: Any,
    starts: Sequence[Job | Paused],
    config: LoopConfig,
    stop: Callable[[], bool],
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory | Paused]:
    """:func:`run_partial_episodes_async` from synchronous code."""
    return _run_sync(
        run_partial_episodes_async(env_factory, policy, tokenizer, starts, config, stop, settings, on_episode)
    )
