"""The trainer's rollout stage on the asynchronous engine: same groups as lock-step, config checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from turngym.agents.hf import HFPolicy
from turngym.agents.tiny import ensure_tiny
from turngym.errors import ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.config_load import load_config
from turngym.trainers.rollout import collect_rollouts, evaluate


def _config(engine: str, **rollout: object) -> TrainConfig:
    base = TrainConfig()
    r = replace(base.rollout, group_size=3, groups_per_iteration=2, engine=engine, **rollout)
    return replace(base, rollout=r, eval=replace(base.eval, episodes=6, batch_size=6))


@pytest.mark.slow
def test_async_rollouts_and_evaluation_equal_lockstep_when_all_episodes_are_in_flight() -> None:
    policy = HFPolicy.from_pretrained(ensure_tiny(), num_threads=1)
    lock = collect_rollouts(policy, policy.tokenizer, _config("lockstep"), iteration=3)
    done = collect_rollouts(policy, policy.tokenizer, _config("async"), iteration=3)
    assert [[t.token_ids for t in g] for g in lock.groups] == [[t.token_ids for t in g] for g in done.groups]
    assert [[t.metadata["group"] for t in g] for g in lock.groups] == [
        [t.metadata["group"] for t in g] for g in done.groups
    ]
    assert [t.turns[0].action_logprobs for g in lock.groups for t in g] == [
        t.turns[0].action_logprobs for g in done.groups for t in g
    ]
    assert evaluate(policy, policy.tokenizer, _config("lockstep")) == evaluate(
        policy, policy.tokenizer, _config("async")
    )
    # fewer slots than episodes: slots refill, and a rerun gives the same groups (timing-free batches)
    slots = _config("async", max_concurrent_episodes=2)
    once = collect_rollouts(policy, policy.tokenizer, slots, iteration=3)
    again = collect_rollouts(policy, policy.tokenizer, slots, iteration=3)
    assert [t.token_ids for g in once.groups for t in g] == [t.token_ids for g in again.groups for t in g]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout.engine=threads", "rollout.engine must be 'async' or 'lockstep'"),
        ("rollout.max_concurrent_episodes=0", "max_concurrent_episodes=0 must be >= 1"),
        ("rollout.batch_wait_s=-1", "batch_wait_s=-1.0 must be >= 0"),
    ],
)
def test_bad_async_settings_are_clear_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
