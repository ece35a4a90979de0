"""LoRA through peft: only the adapter trains, the reference is the adapter switched off, checkpoints
hold only the adapter, merged weights equal the adapted model, adapter directories load."""

from __future__ import annotations

import copy

import pytest
import torch

from turngym.agents.adapters import has_lora_layers, load_adapter_dir, merged_state_dict
from turngym.trainers.batching import TokenRow, collate
from turngym.trainers.lora import (
    apply_lora,
    is_lora,
    load_model_state,
    model_state,
    reference_logprobs,
    save_model,
)
from turngym.trainers.precision import build_optimizer
from turngym.trainers.update import UpdateSettings, batch_logprobs, ppo_update

pytest.importorskip("peft")


def batch():
    rows = [
        TokenRow((1, 2, 3, 4, 5), (0, 0, 1, 1, 1), (0.0, 0.0, 1.0, 1.0, 1.0), (-3.0,) * 5),
        TokenRow((6, 7, 8), (0, 1, 1), (0.0, -1.0, -1.0), (-3.0,) * 3),
    ]
    return collate(rows, pad_id=0)


def lora_model(micro_model, targets="q_proj,v_proj"):
    return apply_lora(micro_model, rank=4, alpha=8.0, dropout=0.0, target_modules=targets, base="random:x")


def train_steps(model, n=3):
    optimizer, _ = build_optimizer(model, lr=0.05, weight_decay=0.0, fp32_master=False)
    for _ in range(n):
        ppo_update(
            model, optimizer, None, batch(), UpdateSettings(mini_batch_rows=2), generator=torch.Generator()
        )


def test_only_the_adapter_trains_and_the_reference_is_the_base_model(micro_model):
    base = copy.deepcopy(micro_model)
    model = lora_model(micro_model)
    assert is_lora(model) and has_lora_layers(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    train_steps(model)
    frozen_after = dict(model.named_parameters())
    assert all(torch.equal(v, frozen_after[n]) for n, v in frozen_before.items())

    settings = UpdateSettings()
    adapted = batch_logprobs(model, batch(), settings)
    reference = reference_logprobs(model, lambda m: batch_logprobs(m, batch(), settings))
    mask = batch().loss_mask.bool()
    torch.testing.assert_close(reference[mask], batch_logprobs(base, batch(), settings)[mask])
    assert (adapted[mask] - reference[mask]).abs().max() > 1e-3  # the trained adapter changed the policy
    torch.testing.assert_close(batch_logprobs(model, batch(), settings), adapted)  # adapter back on


def test_checkpoint_state_is_only_the_adapter_and_restores_it(micro_model):
    model = lora_model(copy.deepcopy(micro_model))
    train_steps(model)
    state = model_state(model)
    assert state and all("lora_" in k for k in state)
    assert sum(v.numel() for v in state.values()) < sum(p.numel() for p in micro_model.parameters()) / 10

    fresh = lora_model(copy.deepcopy(micro_model))
    settings = UpdateSettings()
    assert not torch.equal(batch_logprobs(fresh, batch(), settings), batch_logprobs(model, batch(), settings))
    load_model_state(fresh, state)
    torch.testing.assert_close(
        batch_logprobs(fresh, batch(), settings), batch_logprobs(model, batch(), settings)
    )


def test_merged_weights_compute_what_the_adapted_model_computes(micro_model):
    plain = copy.deepcopy(micro_model)
    model = lora_model(micro_model, targets="all-linear")
    train_steps(model)
    merged = merged_state_dict(model)
    assert set(merged) == set(plain.state_dict())  # the base model's own names (what vLLM loads)
    plain.load_state_dict(merged)
    settings = UpdateSettings()
    torch.testing.assert_close(
        batch_logprobs(plain, batch(), settings),
        batch_logprobs(model, batch(), settings),
        atol=1e-5,
        rtol=1e-5,
    )


def test_an_adapter_directory_loads_onto_its_base(micro_model, tmp_path):
    base = copy.deepcopy(micro_model)
    model = lora_model(micro_model)
    train_steps(model)
    save_model(model, tmp_path)
    assert (tmp_path / "adapter_config.json").is_file() and not (tmp_path / "model.safetensors").exists()
    seen = []

    def load_base(spec):
        seen.append(spec)
        return "tokenizer", copy.deepcopy(base)

    tokenizer, loaded = load_adapter_dir(tmp_path, load_base)
    assert seen == ["random:x"] and tokenizer == "tokenizer"
    settings = UpdateSettings()
    torch.testing.assert_close(
        batch_logprobs(loaded, batch(), settings), batch_logprobs(model, batch(), settings)
    )


class RecordingEngine:
    """Stands in for ``vllm.LLM``: records what ``reload_weights`` would load."""

    def __init__(self):
        self.loaded = None
        self.cache_resets = 0

    def collective_rpc(self, method, kwargs):
        assert method == "reload_weights"
        self.loaded = dict(kwargs["weights_iterator"])

    def reset_prefix_cache(self):
        self.cache_resets += 1


def test_a_vllm_sampler_receives_the_merged_weights_of_a_lora_trained_copy(micro_model):
    from turngym.agents.vllm import VLLMPolicy
    from turngym.errors import ConfigError

    plain = copy.deepcopy(micro_model)
    policy = object.__new__(VLLMPolicy)  # the engine-free parts: update_weights and its checks
    policy.name, policy.version, policy.llm = "vllm:test", 0, RecordingEngine()
    policy._model = micro_model
    policy._shapes = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    policy._checkpoint_names = frozenset(policy._shapes)
    model = lora_model(policy.model, targets="all-linear")  # in place: the policy's copy gets the adapter
    train_steps(model)
    policy.update_weights({})
    assert policy.version == 1 and policy.llm.cache_resets == 1
    assert set(policy.llm.loaded) == set(plain.state_dict())
    plain.load_state_dict(policy.llm.loaded)
    settings = UpdateSettings()
    torch.testing.assert_close(
        batch_logprobs(plain, batch(), settings),
        batch_logprobs(model, batch(), settings),
        atol=1e-5,
        rtol=1e-5,
    )
    with pytest.raises(ConfigError, match="takes no state dict"):
        policy.update_weights({"lm_head.weight": plain.lm_head.weight})
