"""The asynchronous agent loop: refill, the concurrency bound, cancellation, failures, and equality
with the lock-step loop (scripted, expert and hf policies; full and window contexts)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from turngym.agents.async_loop import AsyncSettings, run_chat_episodes, run_episodes, run_episodes_async
from turngym.agents.batcher import PolicyBatcher
from turngym.agents.chat_loop import run_chat_batch
from turngym.agents.hf import HFPolicy
from turngym.agents.loop import run_batch
from turngym.agents.policy import ChatReply, Completion, EnvAwarePolicy, LoopConfig, Policy, SamplingParams
from turngym.agents.scripted import ExpertPolicy, ScriptedPolicy
from turngym.envs.core import StepOutcome
from turngym.envs.toy.maze import MazeEnv
from turngym.errors import ConfigError
from turngym.trajectory import StopReason, Trajectory

MAZE = "turngym/Maze-v0"


class _Tracked(MazeEnv):
    """A Maze whose step sleeps ``delays[task_id]`` s; counts envs open and records every instance."""

    def __init__(self, ledger: _Ledger, delays: dict[int, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger, self.delays, self.closed = ledger, delays or {}, False
        with ledger.lock:
            ledger.envs.append(self)
            ledger.open += 1
            ledger.peak = max(ledger.peak, ledger.open)

    def _step(self, action: str) -> StepOutcome:
        time.sleep(self.delays.get(self.task_id, 0.0))
        return super()._step(action)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self.ledger.lock:
                self.ledger.open -= 1
        super().close()


@dataclass
class _Ledger:
    envs: list[_Tracked] = field(default_factory=list)
    open: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def factory(self, delays: dict[int, float] | None = None, max_turns: int = 3) -> Any:
        return lambda: _Tracked(self, delays, max_turns=max_turns)


@dataclass
class _SeedLog:
    """Wraps a policy and keeps the (prompt, seed) of every request and every call's size."""

    inner: Policy
    requests: Counter[tuple[tuple[int, ...], int | None]] = field(default_factory=Counter)
    sizes: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    def attach(self, envs: Sequence[Any]) -> None:
        if isinstance(self.inner, EnvAwarePolicy):
            self.inner.attach(envs)

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        self.sizes.append(len(prompts))
        for k, prompt in enumerate(prompts):
            self.requests[tuple(prompt), None if seeds is None else seeds[k]] += 1
        return self.inner.generate(prompts, params, seeds)


def _by_prompt(tokenizer: Any) -> ScriptedPolicy:
    """A deterministic function of the prompt (not of the call order, which async changes)."""
    moves = ["go north", "go south", "go east", "go west", "look around"]
    return ScriptedPolicy(tokenizer, lambda ids: moves[(len(ids) * 7 + sum(ids)) % len(moves)])


def _same(a: Sequence[Trajectory], b: Sequence[Trajectory]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.task_id, x.seed, x.stop_reason, x.won) == (y.task_id, y.seed, y.stop_reason, y.won)
        assert x.token_ids == y.token_ids and x.loss_mask == y.loss_mask
        assert [t.action_logprobs for t in x.turns] == [t.action_logprobs for t in y.turns]
        assert [(t.action, t.reward, t.anchor) for t in x.turns] == [
            (t.action, t.reward, t.anchor) for t in y.turns
        ]


JOBS = [(task, 10 + task % 3) for task in range(9)]


@pytest.mark.parametrize("context", ["full", "window:2"])
@pytest.mark.parametrize("wait", [None, 0.0])
def test_async_equals_lockstep_with_scripted_and_expert_policies(
    tiny_tokenizer: Any, context: str, wait: float | None
) -> None:
    config = LoopConfig(
        context=context,
        sampling=SamplingParams(max_new_tokens=24, seed=5),
        env_id=MAZE,
        max_context_tokens=8192,
    )
    for make_policy in (_by_prompt, ExpertPolicy):
        lock_log, async_log = _SeedLog(make_policy(tiny_tokenizer)), _SeedLog(make_policy(tiny_tokenizer))
        ledger = _Ledger()
        turns = 4 if make_policy is _by_prompt else 30
        factory = ledger.factory({2: 0.02, 5: 0.01}, max_turns=turns)
        lockstep = run_batch(factory, lock_log, tiny_tokenizer, JOBS, config)
        settings = AsyncSettings(max_concurrent=4, max_wait_s=wait)
        asynchronous = run_episodes(factory, async_log, tiny_tokenizer, JOBS, config, settings)
        _same(lockstep, asynchronous)
        assert async_log.requests == lock_log.requests  # every (prompt, seed) pair: derive_seed(seed, k, t)
        assert all(env.closed for env in ledger.envs) and len(ledger.envs) == 2 * len(JOBS)
    assert all(t.won for t in asynchronous)  # the expert's


def test_hf_async_is_token_exact_and_equals_lockstep_when_batches_match(tiny_policy: HFPolicy) -> None:
    tok = tiny_policy.tokenizer
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=5, seed=8), env_id=MAZE)
    jobs = [(1, 4), (1, 4), (3, 0)]
    ledger = _Ledger()
    lockstep = run_batch(ledger.factory({1: 0.01}), tiny_policy, tok, jobs, config)
    # every episode in flight and no timed admission: the batches are the lock-step ones, bit for bit
    asynchronous = run_episodes(ledger.factory({1: 0.01}), tiny_policy, tok, jobs, config, AsyncSettings())
    _same(lockstep, asynchronous)
    # refilled slots and timed admission change the batches; the tokens trained on stay exact
    refilled = run_episodes(
        ledger.factory({1: 0.01}),
        tiny_policy,
        tok,
        jobs,
        config,
        AsyncSettings(max_concurrent=2, max_wait_s=0),
    )
    for traj in refilled:
        ids = [i for t in traj.turns for i in (*t.prompt_ids, *t.action_ids)]
        assert traj.token_ids == tuple(ids)
        assert [i for i, m in zip(traj.token_ids, traj.loss_mask, strict=True) if m] == [
            i for t in traj.turns for i in t.action_ids
        ]
        for turn in traj.turns:
            assert turn.action == tok.decode(turn.action_ids, skip_special_tokens=True).strip()
    assert all(env.closed for env in ledger.envs)


def test_a_slow_episode_does_not_hold_back_the_others(tiny_tokenizer: Any) -> None:
    ledger = _Ledger()
    finished: list[tuple[int, float]] = []
    start = time.monotonic()
    trajs = run_episodes(
        ledger.factory({0: 0.6}, max_turns=2), ScriptedPolicy(tiny_tokenizer, ["go north"]), tiny_tokenizer,
        [(task, 0) for task in range(7)], LoopConfig(env_id=MAZE),
        AsyncSettings(max_concurrent=2, max_wait_s=0),
        on_episode=lambda t: finished.append((t.task_id, time.monotonic() - start)),
    )  # fmt: skip
    assert [t.task_id for t in trajs] == list(range(7))  # results in job order
    order = [task for task, _ in finished]
    assert order[-1] == 0  # the slow one (2 steps x 0.6 s) ends last ...
    assert set(order[:-1]) == set(range(1, 7))  # ... while the other slot ran the six others
    assert max(at for task, at in finished if task != 0) < 1.0
    assert ledger.peak == 2


def test_the_concurrency_bound_is_never_exceeded(tiny_tokenizer: Any) -> None:
    ledger = _Ledger()
    delays = {task: 0.002 * (task % 4) for task in range(16)}
    policy = _SeedLog(_by_prompt(tiny_tokenizer))
    trajs = run_episodes(
        ledger.factory(delays), policy, tiny_tokenizer, [(t, 0) for t in range(16)],
        LoopConfig(env_id=MAZE), AsyncSettings(max_concurrent=3, max_wait_s=0.001),
    )  # fmt: skip
    assert len(trajs) == 16 and ledger.peak == 3 and ledger.open == 0
    assert max(policy.sizes) <= 3


def test_cancelling_the_run_closes_every_env(tiny_tokenizer: Any) -> None:
    ledger = _Ledger()

    async def main() -> None:
        run = asyncio.ensure_future(
            run_episodes_async(
                ledger.factory({task: 0.3 for task in range(8)}, max_turns=5),
                ScriptedPolicy(tiny_tokenizer, ["go north"]), tiny_tokenizer, [(t, 0) for t in range(8)],
                LoopConfig(env_id=MAZE), AsyncSettings(max_concurrent=4, max_wait_s=0),
            )
        )  # fmt: skip
        await asyncio.sleep(0.15)  # four episodes are inside a 0.3 s step now
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert len(ledger.envs) == 4 and all(env.closed for env in ledger.envs) and ledger.open == 0


class _FlakyMaze(_Tracked):
    def _step(self, action: str) -> StepOutcome:
        if self.task_id == 1:
            raise RuntimeError("the engine behind this env crashed")
        return super()._step(action)


class _FailsOnTask:
    """Raises for any batch holding a prompt whose seed is in ``bad_seeds`` (retried alone, fails alone)."""

    name = "fails-on-some"

    def __init__(self, inner: Policy, bad: set[int]) -> None:
        self.inner, self.bad = inner, bad

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        if seeds is not None and self.bad & set(seeds):
            raise TimeoutError("the engine took too long")
        return self.inner.generate(prompts, params, seeds)


def test_one_failing_episode_never_stops_the_others(tiny_tokenizer: Any) -> None:
    ledger = _Ledger()
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=8, seed=1), env_id=MAZE)
    trajs = run_episodes(
        lambda: _FlakyMaze(ledger, max_turns=2), ScriptedPolicy(tiny_tokenizer, ["go north"]), tiny_tokenizer,
        [(0, 0), (1, 0), (2, 0)], config, AsyncSettings(max_wait_s=0),
    )  # fmt: skip
    assert [t.stop_reason for t in trajs] == [
        StopReason.TRUNCATED,
        StopReason.ENV_ERROR,
        StopReason.TRUNCATED,
    ]
    assert "engine behind this env crashed" in trajs[1].metadata["error"] and trajs[1].turns[0].action_ids

    from turngym.agents.policy import derive_seed

    bad = {derive_seed(1, 2, 1)}  # job 2's second turn
    policy = _FailsOnTask(ScriptedPolicy(tiny_tokenizer, ["go north"]), bad)
    trajs = run_episodes(ledger.factory(), policy, tiny_tokenizer, [(t, 0) for t in range(4)], config)
    assert trajs[2].stop_reason is StopReason.TIMEOUT and len(trajs[2].turns) == 1
    assert trajs[2].metadata["error"] == "policy: TimeoutError: the engine took too long"
    assert [len(t.turns) for i, t in enumerate(trajs) if i != 2] == [3, 3, 3]
    assert all(env.closed for env in ledger.envs)


def test_the_batcher_starts_when_every_live_episode_waits(tiny_tokenizer: Any) -> None:
    policy = _SeedLog(ScriptedPolicy(tiny_tokenizer, ["go north"]))
    jobs = [(t, 0) for t in range(5)]
    ledger = _Ledger()
    # task 3 ends after its first turn's wait; without a timed admission every batch holds all live
    run_episodes(
        ledger.factory({0: 0.05}, max_turns=3), policy, tiny_tokenizer, jobs, LoopConfig(env_id=MAZE),
        AsyncSettings(max_concurrent=5),
    )  # fmt: skip
    assert policy.sizes == [5, 5, 5]  # the slow step of task 0 held each call back: timing-free batches


def test_bad_settings_are_clear_errors(tiny_tokenizer: Any) -> None:
    with pytest.raises(ConfigError, match="max_concurrent must be >= 1"):
        AsyncSettings(max_concurrent=0)
    with pytest.raises(ConfigError, match="max_wait_s"):
        AsyncSettings(max_wait_s=-1)
    with pytest.raises(ConfigError, match="max_batch"):
        PolicyBatcher(ScriptedPolicy(tiny_tokenizer, ["x"]), SamplingParams(), max_batch=0)


def test_the_sync_entry_point_works_inside_a_running_event_loop(tiny_tokenizer: Any) -> None:
    async def notebook_cell() -> list[Trajectory]:  # a loop is already running here
        return run_episodes(
            _Ledger().factory(), ScriptedPolicy(tiny_tokenizer, ["go north"]), tiny_tokenizer,
            [(0, 0), (1, 0)], LoopConfig(env_id=MAZE),
        )  # fmt: skip

    trajs = asyncio.run(notebook_cell())
    assert [len(t.turns) for t in trajs] == [3, 3]


class _ChatByLength:
    """A chat policy whose reply depends on the conversation only; counts calls in flight."""

    name = "chat-by-length"

    def __init__(self) -> None:
        self.lock, self.running, self.peak = threading.Lock(), 0, 0

    def chat(
        self, conversations: Sequence[Any], params: SamplingParams, tools: Any = None
    ) -> list[ChatReply]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.01)
        with self.lock:
            self.running -= 1
        moves = ["go north", "go south", "go east", "go west"]
        return [ChatReply(moves[len(str(c)) % 4], "stop", completion_tokens=2) for c in conversations]


def test_chat_episodes_equal_the_lockstep_chat_loop() -> None:
    jobs = [(task, 3) for task in range(6)]
    config = LoopConfig(env_id=MAZE, context="window:2")
    ledger = _Ledger()
    lock = run_chat_batch(ledger.factory(), _ChatByLength(), jobs, config)
    policy = _ChatByLength()
    fast = run_chat_episodes(ledger.factory(), policy, jobs, config, AsyncSettings(max_concurrent=3))
    assert [(t.stop_reason, [(x.action, x.reward) for x in t.turns]) for t in lock] == [
        (t.stop_reason, [(x.action, x.reward) for x in t.turns]) for t in fast
    ]
    assert [t.metadata["completion_tokens"] for t in fast] == [6] * 6
    assert policy.peak == 3 and all(env.closed for env in ledger.envs)
