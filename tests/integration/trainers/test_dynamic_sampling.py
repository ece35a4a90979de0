"""Dynamic sampling in the real rollout stage (random admissible actions through the agent loop)."""

from __future__ import annotations

import pytest

from turngym.agents.scripted import RandomPolicy
from turngym.agents.tiny import ensure_tiny
from turngym.trainers.config_load import load_config
from turngym.trainers.loop import compute_group_advantages, gather_groups

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tiny())


def config(dynamic: bool):
    return load_config(
        None,
        [
            "env.kwargs={size: 3, max_turns: 3}",
            "rollout.group_size=4",
            "rollout.groups_per_iteration=6",
            f"rollout.dynamic_sampling={str(dynamic).lower()}",
            "rollout.max_gen_batches=4",
            "credit.invalid_action_penalty=0",
        ],
    )


def test_dynamic_sampling_keeps_only_groups_with_varying_returns(tokenizer):
    policy = RandomPolicy(tokenizer, seed=0)
    _, plain, plain_stats = gather_groups(policy, config(False), iteration=1)
    assert plain_stats == {
        "rollout/groups_seen": 6.0,
        "rollout/groups_kept": 6.0,
        "rollout/retried_groups": 0.0,
        "rollout/dropped_groups": 0.0,
    }
    equal = sum(len({t.total_reward for t in g}) == 1 for g in plain)
    assert equal > 0, "the fixture should produce some all-equal groups"

    raw, shaped, stats = gather_groups(policy, config(True), iteration=1)
    assert all(len({t.total_reward for t in g}) > 1 for g in shaped)
    assert stats["rollout/groups_seen"] > stats["rollout/groups_kept"] == len(shaped)
    assert stats["rollout/groups_seen"] <= 6 * 4
    assert len(raw) == len(shaped)
    advantages, credit_stats = compute_group_advantages(config(True), shaped)
    assert credit_stats["credit/zero_adv_fraction"] < 1.0
    assert len(advantages) == len(shaped)
