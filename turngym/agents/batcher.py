"""A dynamic batcher: serves the completion requests of concurrent episodes with one batched
``generate`` call of a token :class:`~turngym.agents.policy.Policy` at a time.

Episodes (asyncio tasks of :mod:`turngym.agents.async_loop`) each ask for one completion with
:meth:`PolicyBatcher.complete` and await it. Whatever requests are waiting when the policy is free
go into its next call, so a request that arrives while the model is busy is batched into the
model's next forward; the next call starts the moment the previous one ends. The calls run in one
worker thread, so the event loop (and the envs' steps in their own pool) go on meanwhile.

When a call starts (the admission rule), with ``W`` requests waiting and ``L`` live episodes (the
loop registers them with :meth:`enter` / :meth:`leave`; a live episode is waiting, thinking or
stepping its env):

* ``W >= min(max_batch, L)``: every live episode is waiting (or the batch is full): start now.
* ``max_wait_s`` is a number and the oldest waiting request has waited that long: start with
  the ``W`` that are there. ``0`` starts as soon as anything waits.
* ``max_wait_s=None``: only the first rule. The batches then depend only on what the episodes do,
  never on timing, so a run repeats bit for bit (what the trainer needs for exact resumes) even
  with a backend whose numbers move slightly with the batch; a slow env step then holds back the
  next call (the steps themselves still run concurrently).

Requests of a call are ordered by their episode's key (its position in the jobs), so equal waiting
sets give equal batches. A call that raises is retried one request at a time, so only the requests
that fail alone fail (the lock-step loop's rule). Each request carries its own sampling seed, so
for backends that sample per request (``hf``, ``vllm``) an episode's tokens do not depend on its
batch mates, up to floating-point batching effects in the logits (padding width and batch shape
change the order of floating-point sums; see docs/agents.md).

Continuous batching: when ``max_wait_s`` is a number (batches depend on timing anyway) and the
policy is a :class:`~turngym.agents.policy.ContinuousPolicy` (``hf``), a call also hands each
completion back the moment its row finishes, so that episode steps its env while the decode goes
on, and between decode steps the policy takes waiting requests into the running decode (those
whose length falls in its length group, up to ``max_batch`` rows in all). Requests that do not fit
wait for the next call. With ``max_wait_s=None`` calls stay whole, which keeps runs repeatable.
Either way the ``hf`` prefix cache keeps the next prefill cheap: a row that extends a sequence of
an earlier call (or of one that left the running decode) reuses its keys and values
(:class:`~turngym.agents.hf.HFPolicy`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from turngym.agents.policy import (
    Admission,
    Completion,
    ContinuousPolicy,
    EnvAwarePolicy,
    Policy,
    Request,
    SamplingParams,
)
from turngym.errors import ConfigError, PolicyError


@dataclass
class _Request:
    key: int
    prompt: list[int]
    seed: int | None
    env: Any
    future: asyncio.Future[Completion]
    since: float


class PolicyBatcher:
    """Batches waiting completion requests into calls of ``policy.generate`` (see module doc)."""

    def __init__(
        self,
        policy: Policy,
        params: SamplingParams,
        *,
        max_batch: int = 64,
        max_wait_s: float | None = None,
        continuous: bool = True,
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"PolicyBatcher max_batch must be >= 1, got {max_batch}")
        if max_wait_s is not None and max_wait_s < 0:
            raise ConfigError(f"PolicyBatcher max_wait_s must be >= 0 or None, got {max_wait_s}")
        self.policy = policy
        self.params = params
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batch_sizes: list[int] = []
        """Size of every call made so far when it started (for metrics and tests)."""
        self.joined = 0
        """Requests that joined a call already running (continuous batching)."""
        self.continuous = (
            continuous and max_wait_s is not None and isinstance(policy, ContinuousPolicy) and params.n == 1
        )
        """Whether calls admit requests while they run and deliver each completion when it is done
        (``continuous`` asks for it; it also needs ``max_wait_s``, a continuous policy and n = 1)."""
        self._waiting: list[_Request] = []
        self._lock = threading.Lock()  # _waiting is also read by the policy's thread (continuous)
        self._live = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="turngym-policy")

    def enter(self) -> None:
        """An episode starts: until :meth:`leave` it counts as live for the admission rule."""
        self._live += 1

    def leave(self) -> None:
        """An episode ended (or gave up its slot)."""
        self._live -= 1
        self._poke()

    async def complete(
        self, key: int, prompt: Sequence[int], seed: int | None, env: Any = None
    ) -> Completion:
        """One completion of ``prompt`` (seeded with ``seed``); raises what the policy raised for it alone.

        ``key`` orders requests inside a call; ``env`` is handed to an env-aware policy (``expert``).
        """
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._serve())
        future: asyncio.Future[Completion] = loop.create_future()
        with self._lock:
            self._waiting.append(_Request(key, list(prompt), seed, env, future, time.monotonic()))
        self._poke()
        return await future

    async def aclose(self) -> None:
        """Stop serving; requests still waiting are cancelled. The worker thread finishes its call."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for request in waiting:
            request.future.cancel()
        self._thread.shutdown(wait=True)

    # ---- serving ---------------------------------------------------------------------------
    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _timeout(self) -> float | None:
        """Seconds until a batch may start, 0 when it may start now, None when only a change can start it."""
        with self._lock:
            pending = [r for r in self._waiting if not r.future.done()]
        if not pending:
            return None
        if len(pending) >= min(self.max_batch, max(self._live, 1)):
            return 0.0
        if self.max_wait_s is None:
            return None
        return max(0.0, min(r.since for r in pending) + self.max_wait_s - time.monotonic())

    async def _serve(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            timeout = self._timeout()
            if timeout != 0.0:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            with self._lock:
                waiting = sorted((r for r in self._waiting if not r.future.done()), key=lambda r: r.key)
                batch, self._waiting = waiting[: self.max_batch], waiting[self.max_batch :]
            self.batch_sizes.append(len(batch))
            outcomes = await loop.run_in_executor(self._thread, self._call, batch, loop)
            for request, outcome in outcomes:
                _resolve(request, outcome)

    def _call(
        self, batch: list[_Request], loop: asyncio.AbstractEventLoop
    ) -> list[tuple[_Request, Completion | Exception]]:
        """One completion (or the exception) per request of the call, also those that joined it; a
        failed call is retried request by request (those it had not delivered yet)."""
        served = list(batch)
        delivered: set[int] = set()
        try:
            if self.continuous:
                self._continuous(served, delivered, loop)
                return []
            return list(zip(batch, self._generate(batch), strict=True))
        except Exception as exc:  # any backend failure: retried per request below
            left = [r for r in served if id(r) not in delivered]
            if len(served) == 1:
                return [(r, exc) for r in left]
        out: list[tuple[_Request, Completion | Exception]] = []
        for request in left:
            try:
                out += zip([request], self._generate([request]), strict=True)
            except Exception as exc:  # this request's own failure
                out.append((request, exc))
        return out

    def _continuous(
        self, served: list[_Request], delivered: set[int], loop: asyncio.AbstractEventLoop
    ) -> None:
        """One continuous call: ``served`` grows by the requests that join, ``delivered`` holds the
        ids of those already handed back (each the moment its row finished)."""
        assert isinstance(self.policy, ContinuousPolicy)
        by_id = {id(r): r for r in served}

        def take(running: int, fits: Callable[[int], bool], at_least: int) -> list[Request]:
            room = self.max_batch - running
            if room < max(at_least, 1):
                return []
            with self._lock:
                ready = sorted((r for r in self._waiting if not r.future.done()), key=lambda r: r.key)
                joining = [r for r in ready if fits(len(r.prompt))][:room]
                if len(joining) < at_least:
                    return []
                chosen = {id(r) for r in joining}
                self._waiting = [r for r in self._waiting if id(r) not in chosen]
            served.extend(joining)
            by_id.update((id(r), r) for r in joining)
            self.joined += len(joining)
            return [(id(r), r.prompt, r.seed) for r in joining]

        def deliver(tag: Any, completion: Completion) -> None:
            delivered.add(tag)
            loop.call_soon_threadsafe(_resolve, by_id[tag], completion)

        requests = [(id(r), r.prompt, r.seed) for r in served]
        self.policy.generate_continuous(requests, self.params, Admission(take, deliver))
        missing = [r for r in served if id(r) not in delivered]
        if missing:
            raise PolicyError(f"the policy delivered no completion for {len(missing)} of its requests")

    def _generate(self, batch: list[_Request]) -> list[Completion]:
        """One plain ``generate`` call for ``batch``."""
        if isinstance(self.policy, EnvAwarePolicy):
            self.policy.attach([r.env for r in batch])
        seeds = [r.seed for r in batch]
        completions = self.policy.generate(
            [r.prompt for r in batch], self.params, None if None in seeds else [int(s) for s in seeds]
        )
        if len(completions) != len(batch):
            raise PolicyError(f"policy returned {len(completions)} completions for {len(batch)} prompts")
        return completions


def _resolve(request: _Request, outcome: Completion | Exception) -> None:
    """Settle ``request`` with ``outcome`` unless it is settled (or cancelled) already."""
    if request.future.done():
        return
    if isinstance(outcome, Exception):
        request.future.set_exception(outcome)
    else:
        request.future.set_result(outcome)
