"""Partial rollouts (APRIL): whole groups only, carried episodes resumed token-exact with the policy
version of every turn, the TIS weight (hand-computed) and its use in the loss and the iteration."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from turngym.agents.async_loop import AsyncSettings, run_episodes
from turngym.agents.hf import HFPolicy, load_tokenizer_and_model
from turngym.agents.partial import POLICY_VERSION, Paused, run_partial_episodes_async
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.scripted import ScriptedPolicy
from turngym.agents.tiny import ensure_tiny
from turngym.envs.toy.maze import MazeEnv
from turngym.errors import ConfigError
from turngym.trainers import loop as train_loop
from turngym.trainers.april import rollout as april_rollout
from turngym.trainers.april.config import AprilConfig
from turngym.trainers.april.rollout import PartialRollouts, version_lag_metrics
from turngym.trainers.batching import TrainBatch
from turngym.trainers.config import TrainConfig
from turngym.trainers.config_load import load_config
from turngym.trainers.losses import total_loss
from turngym.trainers.losses.tis import tis_weights
from turngym.trainers.update import UpdateSettings, minibatch_loss, update_settings

MOVES = ["go north", "go south", "go east", "go west", "look around"]


def test_tis_weight_hand_computed() -> None:
    old = torch.tensor([[-1.0, -1.0, -2.0]])
    behaviour = torch.tensor([[-2.0, -0.5, -1.0]])
    stale = torch.tensor([[True, True, False]])
    # min(e, 2) = 2; min(e^-0.5, 2) = 0.6065; not stale: 1 (though its ratio is e)
    expected = torch.tensor([[2.0, math.exp(-0.5), 1.0]])
    assert torch.allclose(tis_weights(old, behaviour, stale, cap=2.0), expected)
    with pytest.raises(ConfigError, match="cap C must be > 0"):
        tis_weights(old, behaviour, stale, cap=0.0)


def test_tis_weights_multiply_each_token_loss() -> None:
    logp = torch.zeros(1, 2, requires_grad=True)  # ρ = 1: each token's PPO loss is −A = −1
    kwargs = {"clip_low": 0.2, "clip_high": 0.28, "aggregation": "token-mean"}
    ones = torch.ones(1, 2)
    plain, _ = total_loss("ppo_clip", logp, torch.zeros(1, 2), ones, ones, **kwargs)
    weighted, stats = total_loss(
        "ppo_clip", logp, torch.zeros(1, 2), ones, ones, tis_weights=torch.tensor([[2.0, 0.5]]), **kwargs
    )
    assert float(plain.detach()) == pytest.approx(-1.0)
    assert float(weighted.detach()) == pytest.approx((-2.0 - 0.5) / 2)  # token-mean of w·ℓ
    assert stats["loss/tis_weight_mean"] == pytest.approx(1.25)
    with pytest.raises(ConfigError, match="apply to ppo_clip"):
        total_loss("gspo", logp, torch.zeros(1, 2), ones, ones, tis_weights=ones, **kwargs)


def test_the_update_uses_the_batch_tis_weights(micro_model: torch.nn.Module) -> None:
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    batch = TrainBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        loss_mask=torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]]),
        advantages=torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0], [0.0, -0.5, -0.5, -0.5, 0.0]]),
        old_logprobs=torch.full((2, 5), -3.0),
    )
    settings = UpdateSettings(dual_clip=None, logprob_chunk_tokens=0)
    plain = minibatch_loss(micro_model, batch, settings)
    micro_model.zero_grad()
    tripled = minibatch_loss(micro_model, replace(batch, tis_weights=torch.full((2, 5), 3.0)), settings)
    micro_model.zero_grad()
    assert tripled["loss/policy"] == pytest.approx(3 * plain["loss/policy"], rel=1e-5)


class _Tracked(MazeEnv):
    """A Maze that counts how many of its instances are open."""

    opened: ClassVar[list[_Tracked]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.closed = False
        with self.lock:
            self.opened.append(self)

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> list[_Tracked]:
    _Tracked.opened = []

    def factory(config: TrainConfig, split: str) -> Any:
        return lambda: _Tracked(**{**config.env.kwargs, "split": split})

    monkeypatch.setattr(april_rollout, "env_factory", factory)
    return _Tracked.opened


def _config(**april: Any) -> TrainConfig:
    base = TrainConfig()
    r = replace(
        base.rollout, group_size=2, groups_per_iteration=1, max_new_tokens=24, max_context_tokens=8192,
        april=AprilConfig(enabled=True, oversample=2.0, **april),
    )  # fmt: skip
    return replace(base, rollout=r, env=replace(base.env, kwargs={"size": 2, "max_turns": 6}))


def _scripted() -> ScriptedPolicy:
    tok = load_tokenizer_and_model(ensure_tiny())[0]
    policy = ScriptedPolicy(tok, lambda ids: MOVES[(len(ids) * 7 + sum(ids)) % len(MOVES)])
    policy.version = 0  # type: ignore[attr-defined]
    return policy


def test_oversampled_iterations_train_on_whole_groups_and_resume_carried_episodes_token_exact(
    tracked: list[_Tracked],
) -> None:
    policy, config, april = _scripted(), _config(), PartialRollouts()
    first = april.collect(policy, policy.tokenizer, config, iteration=1)
    # 2 groups launched (oversample 2 x 1); training waits for exactly one whole group
    assert len(first.groups) == 1 and len(first.groups[0]) == 2
    assert all(t.stop_reason.value in ("won", "truncated") for t in first.groups[0])
    assert first.stats["april/carried_groups"] == 1 and first.stats["april/cancelled_episodes"] == 2
    (carried,) = april.carried
    paused = list(carried.members)
    assert all(isinstance(m, Paused) for m in paused)
    assert all(not m.episode.env.closed for m in paused)  # the env is the carried state
    earlier = [m.turns for m in paused]
    assert all(0 < len(turns) < 6 for turns in earlier)
    policy.version = 1  # type: ignore[attr-defined]  # an update happened
    second = april.collect(policy, policy.tokenizer, config, iteration=2)
    trained = second.groups[0]
    assert [(t.task_id, t.seed) for t in trained] == [carried.job] * 2  # the carried group goes first
    for traj, before in zip(trained, earlier, strict=True):
        k = len(before)
        for old, new in zip(before, traj.turns[:k], strict=True):  # earlier turns token-exact
            assert (old.prompt_ids, old.action_ids, old.action_logprobs) == (
                new.prompt_ids, new.action_ids, new.action_logprobs,
            )  # fmt: skip
        assert [turn.info[POLICY_VERSION] for turn in traj.turns] == [0] * k + [1] * (len(traj.turns) - k)
        assert traj.metadata["april_launched"] == 1
    # resumed mid-episode, the episode is the one an uninterrupted run plays (the policy is a
    # function of the prompt)
    loop = LoopConfig(
        sampling=SamplingParams(max_new_tokens=24), env_id=config.env.env_id, max_context_tokens=8192
    )
    whole = run_episodes(
        lambda: MazeEnv(size=2, max_turns=6, split="train"), policy, policy.tokenizer, [carried.job], loop
    )
    assert trained[0].token_ids == whole[0].token_ids and trained[0].loss_mask == whole[0].loss_mask
    lags = version_lag_metrics(second.groups, version=1)
    k = len(earlier[0]) + len(earlier[1])
    n = sum(len(t.turns) for t in trained)
    assert lags == {"april/version_lag_mean": pytest.approx(k / n), "april/version_lag_max": 1.0}
    april.close()
    assert tracked and all(env.closed for env in tracked)


class _Broken(_Tracked):
    broken_task = -1

    def _step(self, action: str) -> Any:
        if self.task_id == self.broken_task:
            raise RuntimeError("the env broke")
        return super()._step(action)


def test_a_group_with_a_failed_episode_is_dropped_and_the_oversampling_fills_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _Tracked.opened = []
    config = _config()
    first_task = np.random.default_rng([config.seed, 1, 0]).choice(config.env.train_tasks, 2, replace=False)[
        0
    ]
    monkeypatch.setattr(_Broken, "broken_task", int(first_task))
    monkeypatch.setattr(
        april_rollout, "env_factory", lambda c, split: lambda: _Broken(**{**c.env.kwargs, "split": split})
    )
    policy, april = _scripted(), PartialRollouts()
    out = april.collect(policy, policy.tokenizer, config, iteration=1)
    assert [t.task_id for t in out.groups[0]] != [first_task] * 2 and len(out.groups) == 1
    assert out.stats["rollout/dropped_groups"] == 1 and out.stats["rollout/failures/env_error"] == 2
    assert april.carried == [] and all(env.closed for env in _Tracked.opened)


def test_without_carry_unfinished_groups_are_closed_and_dropped(tracked: list[_Tracked]) -> None:
    policy, april = _scripted(), PartialRollouts()
    out = april.collect(policy, policy.tokenizer, _config(carry=False), iteration=1)
    assert len(out.groups) == 1 and april.carried == []
    assert out.stats["april/carried_groups"] == 0 and out.stats["rollout/dropped_groups"] == 1
    assert all(env.closed for env in tracked) and len(tracked) == 4


class _Slow(_Tracked):
    def _step(self, action: str) -> Any:
        time.sleep(0.05)
        return super()._step(action)


def test_cancelling_a_partial_run_closes_every_env_also_of_the_paused_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _Tracked.opened = []
    monkeypatch.setattr(
        april_rollout,
        "env_factory",
        lambda config, split: lambda: _Slow(**{**config.env.kwargs, "split": split}),
    )
    policy, config, april = _scripted(), _config(), PartialRollouts()
    april.collect(policy, policy.tokenizer, config, iteration=1)
    starts = [m for group in april.carried for m in group.members]
    assert starts and all(isinstance(m, Paused) and not m.episode.env.closed for m in starts)
    jobs = [(task, 3) for task in range(4)]
    loop = LoopConfig(
        sampling=SamplingParams(max_new_tokens=24), env_id=config.env.env_id, max_context_tokens=8192
    )
    factory = lambda: _Slow(size=2, max_turns=6)  # noqa: E731

    async def main() -> None:
        run = asyncio.ensure_future(
            run_partial_episodes_async(
                factory,
                policy,
                policy.tokenizer,
                [*jobs, *starts],
                loop,
                lambda: False,
                AsyncSettings(max_concurrent=2),
            )  # the paused starts wait behind the jobs: never resumed before the cancel
        )
        await asyncio.sleep(0.08)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert all(env.closed for env in _Tracked.opened)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout.april.oversample=0.5", "oversample=0.5 must be >= 1"),
        ("rollout.april.tis_cap=0", "tis_cap=0.0 must be > 0"),
        ("rollout.engine=lockstep", "needs rollout.engine=async"),
        ("loss.policy_loss=gspo", "applies to loss.policy_loss=ppo_clip"),
    ],
)
def test_bad_april_settings_are_clear_errors(override: str, message: str) -> None:
    sets = ["rollout.april.enabled=true", override]
    if "gspo" in override:
        sets.append("loss.dual_clip=null")
    with pytest.raises(ConfigError, match=message):
        load_config(None, sets)


def test_april_is_off_by_default() -> None:
    assert TrainConfig().rollout.april.enabled is False


def test_the_iteration_weights_stale_turns_by_tis(
    monkeypatch: pytest.MonkeyPatch, tracked: list[_Tracked]
) -> None:
    policy = HFPolicy.from_pretrained(ensure_tiny(), num_threads=1)
    config = _config(tis_cap=1.5)
    config = replace(config, rollout=replace(config.rollout, max_new_tokens=4))
    seen: list[TrainBatch] = []
    real_build = train_loop.build_batch

    def capture(
        model: Any, optimizer: Any, scheduler: Any, batch: TrainBatch, *args: Any, **kwargs: Any
    ) -> dict:
        seen.append(batch)
        return {}

    monkeypatch.setattr(train_loop, "ppo_update", capture)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    settings = update_settings(config, 6)
    april = PartialRollouts()
    groups: list = []
    monkeypatch.setattr(
        train_loop, "build_batch", lambda g, a, p: (groups.append((g, a)), real_build(g, a, p))[1]
    )
    metrics = {}
    for iteration in (1, 2, 3):
        metrics = train_loop.run_iteration(
            config, policy, optimizer, scheduler, settings, iteration, None, april=april
        )
        if seen and seen[-1].tis_weights is not None and metrics["april/version_lag_max"] > 0:
            break
    april.close()
    batch = seen[-1]
    shaped, advantages = groups[-2]  # the update's batch; the turns' lags are built into the last
    behaviour = real_build(shaped, advantages, policy.pad_id).old_logprobs
    version = policy.version - 1  # update_weights bumped it after the update
    lags = [[[float(version - turn.info[POLICY_VERSION]) for turn in t.turns] for t in g] for g in shaped]
    stale = real_build(shaped, lags, policy.pad_id).advantages > 0
    assert metrics["april/version_lag_max"] >= 1 and stale.any()
    expected = torch.exp(batch.old_logprobs - behaviour).clamp(max=1.5)
    assert batch.tis_weights is not None
    assert torch.allclose(batch.tis_weights[stale], expected[stale])
    assert torch.all(batch.tis_weights[~stale] == 1.0)
