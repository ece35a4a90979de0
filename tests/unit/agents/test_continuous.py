"""Continuous batching in the ``hf`` sampler: requests join a running decode, completions leave it
the moment they are done, and every number stays that of a plain forward pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from turngym.agents.async_loop import AsyncSettings, run_episodes
from turngym.agents.batcher import PolicyBatcher
from turngym.agents.hf import HFPolicy, sequence_logprobs
from turngym.agents.policy import Admission, Completion, LoopConfig, Request, SamplingParams
from turngym.envs.core import StepOutcome
from turngym.envs.toy.maze import MazeEnv

PARAMS = SamplingParams(max_new_tokens=6, temperature=0.9, seed=0)


def _prompt(n: int, start: int = 5) -> list[int]:
    return [start + (7 * k) % 300 for k in range(n)]


class _Script:
    """An Admission that hands ``joiners[s]`` over at the ``s``-th take and logs every event."""

    def __init__(self, joiners: dict[int, list[Request]]) -> None:
        self.joiners, self.takes, self.events = joiners, 0, []
        self.done: dict[Any, Completion] = {}
        self.fits: list[Callable[[int], bool]] = []
        self.at_least: list[int] = []

    def take(self, running: int, fits: Callable[[int], bool], at_least: int) -> list[Request]:
        self.takes += 1
        self.fits.append(fits)
        self.at_least.append(at_least)
        joining = self.joiners.pop(self.takes, [])
        if len(joining) < at_least:  # not enough to be worth a prefill: they wait for the next take
            self.joiners[self.takes + 1] = joining + self.joiners.get(self.takes + 1, [])
            joining = []
        self.events += [("take", self.takes, running)] + [("join", tag) for tag, _, _ in joining]
        return joining

    def deliver(self, tag: Any, completion: Completion) -> None:
        self.events.append(("done", tag))
        self.done[tag] = completion


def _exact(policy: HFPolicy, prompt: list[int], seed: int, got: Completion) -> None:
    """``got`` is what the prompt samples alone with its seed, with a plain forward's log-probs."""
    policy.clear_prefix_cache()
    alone = policy.generate([prompt], PARAMS, [seed])[0]
    assert got.token_ids == alone.token_ids and len(got.token_ids) == PARAMS.max_new_tokens
    reference = sequence_logprobs(policy.model, prompt, got.token_ids, PARAMS.temperature)
    torch.testing.assert_close(torch.tensor(got.logprobs), reference, atol=1e-4, rtol=0)


def test_joined_rows_sample_what_they_would_alone_and_finished_rows_leave_at_once(
    tiny_policy: HFPolicy,
) -> None:
    tiny_policy.clear_prefix_cache()
    first = [("a", _prompt(30), 11), ("b", _prompt(24, 9), 12)]
    # c is shorter than the running rows, d longer: both sides of the merge get left padding
    joiners = {2: [("c", _prompt(20, 3), 13)], 4: [("d", _prompt(41, 2), 14)]}
    script = _Script(dict(joiners))
    tiny_policy.generate_continuous(first, PARAMS, Admission(script.take, script.deliver))
    assert sorted(script.done) == ["a", "b", "c", "d"]
    events = script.events
    # a and b (6 tokens from the start) are handed back before c and d, which joined later, finish
    assert events.index(("done", "a")) < events.index(("done", "c")) < events.index(("done", "d"))
    assert events.index(("join", "c")) < events.index(("done", "a"))
    # every take counts the rows still decoding: 2, then 3 once c joined, then 4 once d did
    running = [e[2] for e in events if e[0] == "take"]
    assert running[:5] == [2, 2, 3, 3, 4]
    for tag, prompt, seed in first + joiners[2] + joiners[4]:
        _exact(tiny_policy, prompt, seed, script.done[tag])


def test_joins_wait_until_a_quarter_of_the_running_rows_can_join_together(tiny_policy: HFPolicy) -> None:
    tiny_policy.clear_prefix_cache()
    first = [(k, _prompt(30, k), k) for k in range(8)]
    script = _Script({1: [("x", _prompt(30, 50), 50)], 3: [("y", _prompt(30, 60), 60)]})
    tiny_policy.generate_continuous(first, PARAMS, Admission(script.take, script.deliver))
    assert script.at_least[:3] == [2, 2, 2]  # 8 rows running: at least 8 // 4 = 2 join at once
    events = script.events
    assert ("join", "x") not in events[:3] and events.index(("join", "x")) + 1 == events.index(("join", "y"))
    assert len(script.done) == 10
    for tag, prompt, seed in [("x", _prompt(30, 50), 50), ("y", _prompt(30, 60), 60)]:
        _exact(tiny_policy, prompt, seed, script.done[tag])


def test_only_prompts_in_the_running_length_group_may_join(tiny_policy: HFPolicy) -> None:
    script = _Script({})
    tiny_policy.generate_continuous([("a", _prompt(300), 1)], PARAMS, Admission(script.take, script.deliver))
    fits = script.fits[0]
    assert fits(300) and fits(200) and fits(420)
    assert not fits(100) and not fits(700)  # under half / over twice the width, by more than 64


def test_a_joining_continuation_reuses_the_row_an_earlier_call_kept(tiny_policy: HFPolicy) -> None:
    tiny_policy.clear_prefix_cache()
    prompt = _prompt(30)
    earlier = tiny_policy.generate([prompt], PARAMS, [3])[0]
    follow = prompt + list(earlier.token_ids) + _prompt(5, 40)
    script = _Script({2: [("next", follow, 4)]})
    before = tiny_policy.prefilled_tokens
    tiny_policy.generate_continuous(
        [("other", _prompt(34, 8), 5)], PARAMS, Admission(script.take, script.deliver)
    )
    # "other" runs whole (34); "next" only what the kept row lacks: the last sample and the 5 new
    assert tiny_policy.prefilled_tokens - before == 34 + 1 + 5
    _exact(tiny_policy, follow, 4, script.done["next"])


class _Uneven(MazeEnv):
    """A Maze whose step sleeps longer for odd tasks, so episodes fall out of step."""

    def _step(self, action: str) -> StepOutcome:
        time.sleep(0.03 if self.task_id % 2 else 0.0)
        return super()._step(action)


def test_async_loop_with_continuous_batching_is_token_exact(tiny_policy: HFPolicy) -> None:
    tiny_policy.clear_prefix_cache()
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=6, temperature=0.9, seed=2))
    made: list[PolicyBatcher] = []
    original = PolicyBatcher.__init__

    def spy(self: PolicyBatcher, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PolicyBatcher, "__init__", spy)
        trajs = run_episodes(
            lambda: _Uneven(max_turns=4), tiny_policy, tiny_policy.tokenizer, [(t, t) for t in range(6)],
            config, AsyncSettings(max_concurrent=6, max_wait_s=0),
        )  # fmt: skip
    assert made[0].continuous and made[0].joined > 0  # requests did join running decodes
    for traj in trajs:
        context: list[int] = []
        for turn in traj.turns:
            context += turn.prompt_ids
            reference = sequence_logprobs(tiny_policy.model, context, turn.action_ids, 0.9)
            torch.testing.assert_close(torch.tensor(turn.action_logprobs), reference, atol=1e-4, rtol=0)
            context += turn.action_ids
        assert traj.token_ids == tuple(context)


class _Joiner:
    """A fake continuous policy: its first call waits until two more requests are queued, then
    takes them with the rules given; every prompt is completed with its own length."""

    name = "joiner"

    def __init__(self) -> None:
        self.taken: list[list[int]] = []
        self.plain: list[int] = []

    def generate(self, prompts: Any, params: SamplingParams, seeds: Any = None) -> list[Completion]:
        self.plain.append(len(prompts))
        return [Completion((len(p),), (0.0,), str(len(p)), "stop") for p in prompts]

    def generate_continuous(self, requests: Any, params: SamplingParams, admission: Admission) -> None:
        for tag, prompt, _ in requests:  # handed back before anything joins
            admission.deliver(tag, Completion((len(prompt),), (0.0,), str(len(prompt)), "stop"))
        deadline = time.monotonic() + 5
        joined: list[Request] = []
        while not self.taken and len(joined) < 2 and time.monotonic() < deadline:  # first call only
            assert admission.take(3, lambda n: n < 10, 3) == []  # 1 room left, 3 wanted: none
            joined += admission.take(1, lambda n: n < 10, 2)  # 3 rooms; only short prompts; two at once
            time.sleep(0.001)
        self.taken.append([len(p) for _, p, _ in joined])
        for tag, prompt, _ in joined:
            admission.deliver(tag, Completion((len(prompt),), (0.0,), str(len(prompt)), "stop"))


def test_the_batcher_hands_over_what_fits_and_resolves_each_request_when_delivered() -> None:
    import asyncio

    async def scenario() -> tuple[list[int], PolicyBatcher, _Joiner, bool]:
        policy = _Joiner()
        batcher = PolicyBatcher(policy, SamplingParams(), max_batch=4, max_wait_s=0)
        first = asyncio.ensure_future(batcher.complete(0, [1] * 3, 0))
        await asyncio.sleep(0.05)
        early = first.done()  # delivered while the call still waits for joiners
        rest = [asyncio.ensure_future(batcher.complete(k, [1] * n, k)) for k, n in ((1, 20), (2, 5), (3, 7))]
        got = [c.token_ids[0] for c in await asyncio.gather(first, *rest)]
        await batcher.aclose()
        return got, batcher, policy, early

    got, batcher, policy, early = asyncio.run(scenario())
    assert early and got == [3, 20, 5, 7]
    assert policy.taken == [[5, 7], []] and batcher.joined == 2  # the 20-token prompt did not fit
    assert batcher.batch_sizes == [1, 1] and policy.plain == []  # it went into a call of its own


class _Breaks(_Joiner):
    """Delivers its first request, then fails the call: the rest must be retried one by one."""

    def generate_continuous(self, requests: Any, params: SamplingParams, admission: Admission) -> None:
        tag, prompt, _ = requests[0]
        admission.deliver(tag, Completion((len(prompt),), (0.0,), str(len(prompt)), "stop"))
        raise RuntimeError("the decode broke")


def test_a_failed_continuous_call_retries_only_what_it_had_not_delivered() -> None:
    import asyncio

    async def scenario() -> tuple[list[int], _Breaks]:
        policy = _Breaks()
        batcher = PolicyBatcher(policy, SamplingParams(), max_batch=4, max_wait_s=1.0)
        for _ in range(2):  # two live episodes: the call starts once both wait
            batcher.enter()
        waits = [asyncio.ensure_future(batcher.complete(k, [1] * (k + 2), k)) for k in range(2)]
        got = [c.token_ids[0] for c in await asyncio.gather(*waits)]
        await batcher.aclose()
        return got, policy

    got, policy = asyncio.run(scenario())
    assert got == [2, 3] and policy.plain == [1]  # the undelivered one alone, through generate


def test_continuous_batching_needs_a_timed_batcher_and_can_be_turned_off(tiny_policy: HFPolicy) -> None:
    def batcher(**kwargs: Any) -> PolicyBatcher:
        return PolicyBatcher(tiny_policy, PARAMS, **kwargs)

    assert batcher(max_wait_s=0.005).continuous
    assert not batcher().continuous  # max_wait_s=None: whole calls, repeatable runs
    assert not batcher(max_wait_s=0.005, continuous=False).continuous
    assert not PolicyBatcher(tiny_policy, SamplingParams(n=2), max_wait_s=0.005).continuous
