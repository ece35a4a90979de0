"""fp32 master weights for low-precision models, fp16 loss scaling, and the precision settings."""

from __future__ import annotations

import re

import pytest
import torch

from turngym.errors import ConfigError
from turngym.trainers.config_load import load_config
from turngym.trainers.precision import MasterWeightsAdamW, build_optimizer, clip_and_step


def one_weight(dtype):
    model = torch.nn.Linear(1, 1, bias=False).to(dtype)
    with torch.no_grad():
        model.weight.fill_(1.0)
    return model


def steps(model, optimizer, n):
    for _ in range(n):
        optimizer.zero_grad(set_to_none=True)
        model.weight.grad = torch.ones_like(model.weight)
        clip_and_step(optimizer, model, max_norm=10.0)


def test_updates_below_bf16_resolution_are_lost_without_master_weights_and_kept_with_them():
    # AdamW with a constant gradient moves a weight by lr = 1e-3 per step. At 1.0, bf16 steps are
    # 2^-8 = 0.0039 apart below 1, so 1.0 - 0.001 rounds back to 1.0 every time; fp32 master weights
    # reach 0.990 after 10 steps, which rounds to the bf16 value 0.98828125 (= 1 - 3 · 2^-8).
    plain = one_weight(torch.bfloat16)
    optimizer, _ = build_optimizer(plain, lr=1e-3, weight_decay=0.0, fp32_master=False)
    steps(plain, optimizer, 10)
    assert plain.weight.item() == 1.0

    mixed = one_weight(torch.bfloat16)
    optimizer, inner = build_optimizer(mixed, lr=1e-3, weight_decay=0.0, fp32_master=True)
    assert isinstance(optimizer, MasterWeightsAdamW) and inner is optimizer.optimizer
    steps(mixed, optimizer, 10)
    assert optimizer.master[0].item() == pytest.approx(0.990, abs=1e-6)
    assert mixed.weight.item() == 0.98828125
    assert mixed.weight.dtype == torch.bfloat16 and optimizer.master[0].dtype == torch.float32


def test_fp32_model_needs_no_master_copy():
    optimizer, _ = build_optimizer(one_weight(torch.float32), lr=1e-3, weight_decay=0.0, fp32_master=True)
    assert isinstance(optimizer, torch.optim.AdamW)


def test_fp16_overflow_skips_the_step_and_halves_the_loss_scale():
    model = one_weight(torch.float16)
    optimizer, _ = build_optimizer(model, lr=1e-3, weight_decay=0.0, fp32_master=True)
    assert optimizer.loss_scale == 2.0**16
    model.weight.grad = torch.full_like(model.weight, float("inf"))
    norm = optimizer.clip_and_step(1.0)
    assert norm == float("inf") and optimizer.skipped_steps == 1
    assert optimizer.loss_scale == 2.0**15
    assert model.weight.item() == 1.0
    # a clean step divides the scaled gradient back: grad 2^15 · 0.5 → 0.5 in fp32
    model.weight.grad = torch.full_like(model.weight, 0.5 * 2.0**15)
    optimizer.clip_and_step(10.0)
    assert optimizer.master[0].grad.item() == 0.5


def test_master_state_round_trips():
    model = one_weight(torch.bfloat16)
    optimizer, _ = build_optimizer(model, lr=1e-3, weight_decay=0.0, fp32_master=True)
    steps(model, optimizer, 3)
    state = optimizer.state_dict()
    other_model = one_weight(torch.bfloat16)
    other, _ = build_optimizer(other_model, lr=1e-3, weight_decay=0.0, fp32_master=True)
    other.load_state_dict(state)
    steps(model, optimizer, 2)
    steps(other_model, other, 2)
    assert other.master[0].item() == optimizer.master[0].item()


def test_precision_settings_are_validated():
    with pytest.raises(ConfigError, match=re.escape("float16 needs optim.fp32_master_weights=true")):
        load_config(None, ["model.dtype=float16"])
    with pytest.raises(ConfigError, match=re.escape("model.dtype must be float32, bfloat16 or float16")):
        load_config(None, ["model.dtype=half"])
    with pytest.raises(ConfigError, match=re.escape("max_tokens_per_micro_batch=0 must be >= 1")):
        load_config(None, ["optim.max_tokens_per_micro_batch=0"])
    with pytest.raises(ConfigError, match=re.escape("model.lora needs rank >= 0")):
        load_config(None, ["model.lora.rank=-1"])
    with pytest.raises(ConfigError, match=re.escape("logging.wandb_mode must be")):
        load_config(None, ["logging.wandb_mode=cloud"])
    config = load_config(None, ["model.dtype=float16", "optim.fp32_master_weights=true", "model.lora.rank=8"])
    assert config.model.lora.rank == 8
