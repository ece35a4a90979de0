"""LoRA through ``peft``: wrap the policy, train only the adapter, and keep everything else single.

``model.lora.rank`` > 0 wraps the causal LM in a ``peft`` LoRA model (``rank``, ``alpha``,
``dropout``, ``target_modules``; extra ``lora``). Then

* the optimizer sees only the adapter's weights (the base weights are frozen);
* the KL reference is the same module with the adapter disabled (:func:`reference_logprobs`), so no
  second copy of the model is held: with LoRA the reference is the base model;
* checkpoints and ``warm_start.pt`` hold only the adapter (:func:`model_state`), and ``final/`` is
  a ``peft`` adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``) whose
  ``base_model_name_or_path`` names the base (a directory, or ``random:<arch>``); ``hf:final``
  loads the base and the adapter (:func:`turngym.agents.adapters.load_adapter_dir`);
* a vLLM sampler gets merged weights (:func:`~turngym.agents.adapters.merged_state_dict`:
  W + (α/r)·B·A in the base's parameter names), since the engine serves a plain model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from turngym.agents.adapters import merged_state_dict, require_peft
from turngym.errors import ConfigError


def is_lora(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a ``peft`` model with an adapter."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def apply_lora(
    model: torch.nn.Module, *, rank: int, alpha: float, dropout: float, target_modules: str, base: str
) -> torch.nn.Module:
    """``model`` wrapped with a fresh LoRA adapter on ``target_modules`` (comma-separated module
    names, or ``all-linear``); ``base`` is recorded as the adapter's base model."""
    peft = require_peft()
    targets: str | list[str] = (
        target_modules if target_modules == "all-linear" else [t.strip() for t in target_modules.split(",")]
    )
    config = peft.LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    try:
        with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"model.lora.target_modules={target_modules!r}: {exc}") from None
    wrapped.peft_config["default"].base_model_name_or_path = base
    # peft keeps adapter weights in fp32 only when asked; keep them in the base's dtype for one dtype
    # per forward, and let optim.fp32_master_weights hold fp32 copies.
    dtype = next(p for p in wrapped.parameters() if not p.requires_grad).dtype
    for p in wrapped.parameters():
        if p.requires_grad:
            p.data = p.data.to(dtype)
    return wrapped


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint stores of ``model``: the adapter's weights for LoRA, else everything."""
    if is_lora(model):
        from peft import get_peft_model_state_dict

        # save_embedding_layers=False: "auto" would look the base up on the Hub to check its vocabulary
        state = get_peft_model_state_dict(model, save_embedding_layers=False)
        return {k: v.detach().clone() for k, v in state.items()}
    return model.state_dict()


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`model_state`."""
    if is_lora(model):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, state)
        if result.unexpected_keys:
            raise ConfigError(
                f"the checkpoint's adapter has unknown weights, e.g. {result.unexpected_keys[:3]}"
            )
        return
    model.load_state_dict(state)


def save_model(model: torch.nn.Module, path: str | Path) -> None:
    """``save_pretrained`` of the trained module: a LoRA model writes only its adapter."""
    hf: Any = model
    if is_lora(model):
        hf.save_pretrained(str(path), save_embedding_layers=False)
    else:
        hf.save_pretrained(path)


def reference_logprobs(
    model: torch.nn.Module, compute: Callable[[torch.nn.Module], torch.Tensor]
) -> torch.Tensor:
    """``compute(model)`` with the adapter switched off (the base model's numbers)."""
    with model.disable_adapter():  # type: ignore[operator]  # peft's context manager
        return compute(model)


__all__ = [
    "apply_lora",
    "is_lora",
    "load_model_state",
    "merged_state_dict",
    "model_state",
    "reference_logprobs",
    "save_model",
]
