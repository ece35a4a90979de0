"""One PPO step of the real tiny model on real agent-loop tokens changes every trainable parameter."""

from __future__ import annotations

import pytest
import torch

from turngym.trainers.batching import build_batch
from turngym.trainers.config_load import load_config
from turngym.trainers.sft import expert_demos, load_policy
from turngym.trainers.update import UpdateSettings, ppo_update, token_logprobs

pytestmark = pytest.mark.integration


def test_a_ppo_step_of_hf_tiny_changes_every_parameter():
    torch.set_num_threads(1)
    config = load_config(None, ["sft.demos=6", "env.kwargs={size: 2, max_turns: 4}"])
    policy = load_policy(config)
    demos = expert_demos(policy.tokenizer, config)
    g = torch.Generator().manual_seed(0)
    advantages = [[[float(torch.randn(1, generator=g)) for _ in t.turns] for t in demos]]
    batch = build_batch([demos], advantages, policy.pad_id)
    assert batch.num_loss_tokens == sum(len(turn.action_ids) for t in demos for turn in t.turns)
    model = policy.model
    with torch.no_grad():  # expert demos carry log-prob 0; use the model's own numbers as pi_old
        old = token_logprobs(model, batch).logprobs
    batch = type(batch)(batch.input_ids, batch.attention_mask, batch.loss_mask, batch.advantages, old)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stats = ppo_update(model, optimizer, None, batch, UpdateSettings(mini_batch_rows=8), generator=g)
    unchanged = [
        n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p.detach(), before[n])
    ]
    assert unchanged == []
    assert stats["loss/optimizer_steps"] == 1.0
    assert stats["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-4)  # first step: pi == pi_old
