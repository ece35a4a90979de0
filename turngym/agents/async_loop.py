"""The asynchronous agent loop: every episode is its own asyncio task.

An episode asks the policy for a completion and awaits it, steps its env in a worker thread pool
(so a slow ``reset``/``step`` — a sandbox run, a page load, a ``RemoteEnv`` round trip — blocks
nobody else) and goes on. At most ``max_concurrent`` episodes are in flight: the jobs are served
by that many slots, and a slot starts its next job the moment its episode ends. A token policy
that only has a batched ``generate`` is served by a :class:`~turngym.agents.batcher.PolicyBatcher`
(whatever requests wait go into its next call); a policy with its own ``agenerate`` coroutine (an
:class:`AsyncPolicy`, e.g. an engine with continuous batching) is awaited directly.

Every promise of the lock-step loop (:mod:`turngym.agents.loop`) holds, with the same code for the
per-turn bookkeeping: token-exact ``full`` and ``window:k`` contexts, typed stop reasons
(``env_error``, ``policy_error``, ``timeout`` with the message in ``metadata['error']``), and one
failing episode never stops the others. Turn ``t`` of job ``k`` is seeded with
``derive_seed(seed, k, t)`` as in the lock-step loop, so for backends that sample per request
the trajectories equal the lock-step loop's (exactly for the scripted policies; up to
floating-point batching effects for ``hf``; with ``max_wait_s=None`` and ``max_concurrent`` at
least the number of jobs the ``hf`` batches are the lock-step ones, so the numbers are equal too).

Cancelling the run (``KeyboardInterrupt`` under :func:`run_episodes`, ``task.cancel()`` under
:func:`run_episodes_async`) closes every env it created: an env whose ``reset``/``step`` is still
running in the pool is closed when that call returns, and the run waits for it.

Partial rollouts, whose episodes stop at a turn boundary and play on later, run on this loop
(:mod:`turngym.agents.partial`).

Envs step in threads: a pure-Python env that computes for long holds the GIL; give it a
``RemoteEnv`` or a sandbox (separate processes) to run truly in parallel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from turngym.agents import chat_loop
from turngym.agents.baselines import run_episode
from turngym.agents.batcher import PolicyBatcher
from turngym.agents.chat import action_text, env_tools
from turngym.agents.loop import (
    EnvFactory,
    Job,
    _finish,
    _start,
    failure_stop,
    next_prompt,
    policy_failed,
    record_step,
    step_env,
)
from turngym.agents.policy import ChatPolicy, Completion, LoopConfig, Policy, SamplingParams, derive_seed
from turngym.errors import ConfigError
from turngym.trajectory import StopReason, Trajectory

if TYPE_CHECKING:
    from turngym.agents.partial import Paused, _Partial

T = TypeVar("T")


@runtime_checkable
class AsyncPolicy(Protocol):
    """A token policy that serves one request at a time as a coroutine (its engine batches them)."""

    name: str

    async def agenerate(self, prompt: Sequence[int], params: SamplingParams, seed: int | None) -> Completion:
        """One completion of ``prompt``; raises when the backend fails for it."""
        ...


@dataclass(frozen=True)
class AsyncSettings:
    """How many episodes run at once and when the batcher starts a call."""

    max_concurrent: int = 32
    """Episodes in flight at most; a finished episode's slot starts the next job at once."""
    max_wait_s: float | None = None
    """Longest a request waits for more requests before the batcher's next call (None: until every
    live episode waits; timing-independent batches, see :mod:`turngym.agents.batcher`)."""
    env_threads: int | None = None
    """Threads that run env ``reset``/``step`` (None: ``max_concurrent``)."""
    continuous: bool = True
    """With ``max_wait_s`` set, a policy that can (``hf``) takes waiting requests into the call it
    is running and hands each completion back when done (False: every call stays whole)."""

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.max_wait_s is not None and self.max_wait_s < 0:
            raise ConfigError(f"max_wait_s must be >= 0 or None, got {self.max_wait_s}")
        if self.env_threads is not None and self.env_threads < 1:
            raise ConfigError(f"env_threads must be >= 1 or None, got {self.env_threads}")


def run_episodes(
    env_factory: EnvFactory,
    policy: Policy | AsyncPolicy,
    tokenizer: Any,
    jobs: Sequence[Job],
    config: LoopConfig,
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
    first_index: int = 0,
) -> list[Trajectory]:
    """The episodes of ``jobs`` (``(task_id, env seed)`` each), run asynchronously; in job order.

    ``on_episode`` is called with each trajectory as its episode ends (in finishing order).
    ``first_index`` is the position of ``jobs[0]`` in a larger list of jobs split among workers:
    job ``k`` here samples as job ``first_index + k`` there (its sampling stream).
    """
    return _run_sync(
        run_episodes_async(env_factory, policy, tokenizer, jobs, config, settings, on_episode, first_index)
    )


async def run_episodes_async(
    env_factory: EnvFactory,
    policy: Policy | AsyncPolicy,
    tokenizer: Any,
    jobs: Sequence[Job],
    config: LoopConfig,
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
    first_index: int = 0,
) -> list[Trajectory]:
    """:func:`run_episodes` as a coroutine (for callers that run their own event loop)."""
    s = settings or AsyncSettings()
    batcher = None
    if not isinstance(policy, AsyncPolicy):
        batcher = _batcher(policy, config, s)
    pool = concurrent.futures.ThreadPoolExecutor(s.env_threads or s.max_concurrent, "turngym-env")

    async def complete(k: int, prompt: list[int], seed: int | None, env: Any) -> Completion:
        if batcher is None:
            return await policy.agenerate(prompt, config.sampling, seed)  # type: ignore[union-attr]
        return await batcher.complete(k, prompt, seed, env)

    async def episode(k: int) -> Trajectory:
        if batcher is not None:
            batcher.enter()
        try:
            index = first_index + k  # the episode's sampling stream
            return await _token_episode(
                pool, env_factory, policy, tokenizer, jobs[k], index, config, complete
            )
        finally:
            if batcher is not None:
                batcher.leave()

    try:
        return await _slots(len(jobs), s.max_concurrent, episode, on_episode)
    finally:
        if batcher is not None:
            await batcher.aclose()
        pool.shutdown(wait=True)  # envs abandoned mid-call are closed once their call returns


def _batcher(policy: Policy, config: LoopConfig, settings: AsyncSettings) -> PolicyBatcher:
    """The batcher serving a run's completion requests, as ``settings`` asks."""
    return PolicyBatcher(
        policy, config.sampling, max_batch=settings.max_concurrent, max_wait_s=settings.max_wait_s,
        continuous=settings.continuous,
    )  # fmt: skip


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``; from inside a running event loop (a notebook, an async server) it runs
    in a thread of its own, since a loop cannot be nested."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, "turngym-run") as thread:
        return thread.submit(asyncio.run, coro).result()


async def _slots(
    count: int,
    max_concurrent: int,
    episode: Callable[[int], Awaitable[Any]],
    on_episode: Callable[[Any], None] | None,
) -> list[Any]:
    """``episode(k)`` for ``k < count`` on ``max_concurrent`` slots; results in ``k`` order."""
    results = await _positional_slots(count, max_concurrent, episode, on_episode)
    return [r for r in results if r is not None]


async def _positional_slots(
    count: int,
    max_concurrent: int,
    episode: Callable[[int], Awaitable[Any]],
    on_episode: Callable[[Any], None] | None,
    stop: Callable[[], bool] | None = None,
) -> list[Any]:
    """:func:`_slots` with ``None`` at the jobs that never started; once ``stop()`` is True no
    slot starts another job."""
    results: list[Any] = [None] * count
    order = iter(range(count))  # shared: each slot takes the next job when its episode ends

    async def slot() -> None:
        for k in order:
            if stop is not None and stop():
                return
            results[k] = await episode(k)
            if on_episode is not None:
                on_episode(results[k])

    tasks = [asyncio.ensure_future(slot()) for _ in range(min(max_concurrent, count))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


class _EnvCalls:
    """Runs an episode's env calls in the pool and closes its env exactly once, also when the
    episode is cancelled while a call is still running (then the env closes when the call returns)."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.pool = pool
        self.env: Any = None
        self._inflight: concurrent.futures.Future[Any] | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        self._inflight = self.pool.submit(fn, *args)
        result = await asyncio.wrap_future(self._inflight)
        self._inflight = None
        return result

    def close(self) -> None:
        """Close the env now, or when the call still running in the pool returns."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done():
            inflight.add_done_callback(lambda f: self._close_after(f))
        elif inflight is not None:
            self._close_after(inflight)
        elif self.env is not None:
            self.env.close()

    def _close_after(self, future: concurrent.futures.Future[Any]) -> None:
        env = self.env
        if env is None and not future.cancelled() and future.exception() is None:
            env = _env_of(future.result())  # the call that was creating the env finished
        if env is not None:
            env.close()


def _env_of(value: Any) -> Any:
    return getattr(value, "env", None)


async def _token_episode(
    pool: concurrent.futures.ThreadPoolExecutor,
    env_factory: EnvFactory,
    policy: Any,
    tokenizer: Any,
    job: Job,
    k: int,
    config: LoopConfig,
    complete: Callable[[int, list[int], int | None, Any], Awaitable[Completion]],
    partial: _Partial | None = None,
) -> Trajectory | Paused:
    calls = _EnvCalls(pool)
    try:
        ep = partial.resumed(k) if partial is not None else None
        if ep is None:
            ep = await calls.call(_start, env_factory, tokenizer, job, k, config)
    except BaseException:
        calls.close()
        raise
    calls.env = ep.env
    seed = config.sampling.seed
    try:
        while ep.stop is None:
            if partial is not None and partial.stop():  # a turn boundary: the env stays open
                return partial.pause(ep)
            version = getattr(policy, "version", None)
            prompt = next_prompt(ep, config)
            if prompt is None:
                break
            turn_seed = None if seed is None else derive_seed(seed, k, len(ep.turns))
            try:
                completion = await complete(k, prompt, turn_seed, ep.env)
            except Exception as exc:  # this episode's policy failure; the others go on
                ep.stop, ep.error = failure_stop("policy", exc, StopReason.POLICY_ERROR)
                break
            if policy_failed(ep, completion):
                break
            action = action_text(completion.text)
            outcome = await calls.call(step_env, ep.env, action)
            record_step(ep, prompt, completion, action, outcome, config.window)
            if partial is not None:  # the weights that sampled this turn
                partial.stamp(ep, version)
    except BaseException:
        calls.close()
        raise
    return _finish(ep, policy, config)  # closes the env


async def run_chat_episodes_async(
    env_factory: EnvFactory,
    policy: ChatPolicy,
    jobs: Sequence[Job],
    config: LoopConfig,
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Episodes of a chat policy (``openai``): each request is its own call, made from the pool."""
    s = settings or AsyncSettings()
    pool = concurrent.futures.ThreadPoolExecutor(s.env_threads or s.max_concurrent, "turngym-env")

    async def episode(k: int) -> Trajectory:
        calls = _EnvCalls(pool)
        try:
            conv = await calls.call(chat_loop._start, env_factory, jobs[k])
            calls.env = conv.env
            tools = env_tools(conv.env)
            while conv.stop is None:
                try:
                    messages = [conv.messages(config.window)]
                    replies = await calls.call(policy.chat, messages, config.sampling, tools)
                except Exception as exc:  # the call failed: this conversation stops, none raises
                    conv.stop, conv.error = failure_stop("policy", exc, StopReason.POLICY_ERROR)
                    break
                await calls.call(chat_loop._advance, conv, replies[0])
        except BaseException:
            calls.close()
            raise
        return chat_loop._finish(conv, policy, config)

    try:
        return await _slots(len(jobs), s.max_concurrent, episode, on_episode)
    finally:
        pool.shutdown(wait=True)


def run_chat_episodes(
    env_factory: EnvFactory,
    policy: ChatPolicy,
    jobs: Sequence[Job],
    config: LoopConfig,
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """:func:`run_chat_episodes_async` from synchronous code."""
    return _run_sync(run_chat_episodes_async(env_factory, policy, jobs, config, settings, on_episode))


def run_baseline_episodes(
    env_factory: EnvFactory,
    env_id: str,
    agent: str,
    jobs: Sequence[Job],
    settings: AsyncSettings | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Episodes of a model-free baseline (``expert``, ``random``), ``max_concurrent`` at a time,
    each in a fresh env from ``env_factory`` played in the pool."""
    s = settings or AsyncSettings()

    def play(job: Job) -> Trajectory:
        env = env_factory()
        try:
            return run_episode(env, env_id, agent, seed=job[1], task_id=job[0])
        finally:
            env.close()

    async def main() -> list[Trajectory]:
        pool = concurrent.futures.ThreadPoolExecutor(s.env_threads or s.max_concurrent, "turngym-env")
        loop = asyncio.get_running_loop()

        async def episode(k: int) -> Trajectory:
            return await loop.run_in_executor(pool, play, jobs[k])

        try:
            return await _slots(len(jobs), s.max_concurrent, episode, on_episode)
        finally:
            pool.shutdown(wait=True)

    return _run_sync(main())
