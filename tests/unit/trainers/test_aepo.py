"""AEPO's loss switches: the entropy-aware advantage (note §3.6 fixture) and gradient-preserving
clipping, alone and through the update stage."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from turngym.errors import ConfigError
from turngym.trainers.batching import TokenRow, collate
from turngym.trainers.config_load import load_config
from turngym.trainers.losses import total_loss
from turngym.trainers.losses.aepo import entropy_scaled_advantages, preserved_tokens, standardized_entropy
from turngym.trainers.losses.ppo_clip import ppo_clip_loss
from turngym.trainers.update import UpdateSettings, minibatch_loss, token_logprobs


def test_entropy_aware_advantage_fixture() -> None:
    entropy = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the masked token's entropy does not enter the statistics
    assert standardized_entropy(entropy, mask)[0].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-5)
    scaled = entropy_scaled_advantages(torch.ones(1, 4), entropy, mask, 0.2)
    assert scaled[0].tolist() == pytest.approx([0.8, 1.0, 1.2, 1.0], abs=1e-5)


def test_preserved_tokens() -> None:
    entropy = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert preserved_tokens(entropy, mask, "all").tolist() == [[True, True, True, False]]
    assert preserved_tokens(entropy, mask, "high_entropy").tolist() == [[False, False, True, False]]
    with pytest.raises(ConfigError, match="needs the token entropies"):
        preserved_tokens(None, mask, "high_entropy")


def test_gradient_preserving_clip_keeps_the_value_and_the_gradient() -> None:
    old = torch.zeros(1, 1)
    advantages, mask = torch.ones(1, 1), torch.ones(1, 1)
    grads, values = [], []
    for preserve in (None, torch.ones(1, 1, dtype=torch.bool)):
        logp = torch.full((1, 1), float(torch.log(torch.tensor(1.5))), requires_grad=True)
        out = ppo_clip_loss(logp, old, advantages, mask, clip_high=0.28, preserve_high=preserve)
        out.loss.backward()
        values.append(float(out.loss.detach()))
        grads.append(float(logp.grad))
    assert values == pytest.approx([-1.28, -1.28])
    assert grads == pytest.approx([0.0, -1.28])  # the clipped token keeps (1 + ε_high)·∇log π·A
    with pytest.raises(ConfigError, match="applies to ppo_clip"):
        total_loss("gspo", old, old, advantages, mask, clip_low=0.2, clip_high=0.2, preserve_high=mask.bool())


def test_the_update_stage_scales_advantages_by_entropy(micro_model: torch.nn.Module) -> None:
    rows = [
        TokenRow((1, 5, 7, 9, 3), (0, 1, 1, 1, 1), (0.0, 1.0, 1.0, -0.5, -0.5), (0.0,) * 5),
        TokenRow((2, 6, 8), (0, 1, 1), (0.0, 2.0, 2.0), (0.0,) * 3),
    ]
    batch = collate(rows, pad_id=0)
    with torch.no_grad():
        out = token_logprobs(micro_model, batch, with_entropy=True)
    batch = replace(batch, old_logprobs=out.logprobs)

    def grad(settings: UpdateSettings, b: object) -> torch.Tensor:
        micro_model.zero_grad(set_to_none=True)
        minibatch_loss(micro_model, b, settings)
        return torch.cat([p.grad.flatten() for p in micro_model.parameters() if p.grad is not None])

    scaled = replace(
        batch, advantages=entropy_scaled_advantages(batch.advantages, out.entropy, batch.loss_mask, 0.2)
    )
    base = UpdateSettings(mini_batch_rows=8, micro_batch_rows=8)
    on = grad(replace(base, entropy_advantage=0.2), batch)
    assert torch.allclose(on, grad(base, scaled), atol=1e-7)
    assert not torch.allclose(on, grad(base, batch), atol=1e-7)


def test_aepo_config_errors() -> None:
    with pytest.raises(ConfigError, match="balanced_clipping"):
        load_config(
            None,
            [
                "rollout.strategy=arpo",
                "rollout.arpo.balanced_clipping=true",
                "loss.policy_loss=gspo",
                "loss.dual_clip=null",
            ],
        )
    with pytest.raises(ConfigError, match="balanced_clipping_tokens"):
        load_config(None, ["rollout.strategy=arpo", "rollout.arpo.balanced_clipping_tokens=some"])
