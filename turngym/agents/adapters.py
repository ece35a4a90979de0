"""LoRA adapter directories (``peft``): what ``hf:DIR`` loads when DIR holds an adapter.

A LoRA run's ``final/`` is a ``peft`` adapter directory: ``adapter_config.json`` (its
``base_model_name_or_path`` names the base: a model directory or ``random:<arch>``),
``adapter_model.safetensors`` and the tokenizer. :func:`load_adapter_dir` builds the base and puts
the adapter on it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from turngym.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"


def require_peft() -> Any:
    """The ``peft`` module, or a ConfigError saying how to install it."""
    try:
        import peft
    except ImportError as exc:
        raise ConfigError(f'LoRA needs the peft package ({exc}): pip install -e ".[lora]"') from None
    return peft


def is_adapter_dir(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).is_file()


def adapter_base(path: Path) -> str:
    """The ``base_model_name_or_path`` of an adapter directory."""
    config = json.loads((path / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{path / ADAPTER_CONFIG} names no base_model_name_or_path; cannot load its base")
    return str(base)


def load_adapter_dir(
    path: Path, load_base: Callable[[str], tuple[Any, torch.nn.Module]]
) -> tuple[Any, torch.nn.Module]:
    """``(tokenizer, base + adapter)`` of an adapter directory; ``load_base(spec)`` builds the base
    (``spec`` a directory or ``random:<arch>``). The directory's own tokenizer wins when it has one."""
    peft = require_peft()
    tokenizer, base = load_base(adapter_base(path))
    if (path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    dtype = next(p.dtype for p in base.parameters())
    with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        model = peft.PeftModel.from_pretrained(base, str(path))
    return tokenizer, model.to(dtype).eval()


def base_model(model: Any) -> Any:
    """The model a ``peft`` wrapper holds (``model`` itself when it is not wrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def has_lora_layers(model: torch.nn.Module) -> bool:
    """Whether LoRA layers were injected into ``model`` (or the ``peft`` model wrapping it)."""
    return any(hasattr(m, "lora_A") for m in model.modules())


def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The plain model's state dict (its own parameter names) with every LoRA update merged in:
    W + (α/r)·B·A per adapted layer (peft's ``get_delta_weight``). ``model`` is not changed.

    ``model`` is a ``peft`` model or the module peft injected its layers into.
    """
    base = base_model(model)
    deltas: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
                deltas[f"{name}.weight"] = module.get_delta_weight("default")
        merged: dict[str, torch.Tensor] = {}
        for key, value in base.state_dict().items():
            if "lora_" in key:
                continue
            clean = key.replace(".base_layer.", ".")
            merged[clean] = value + deltas[clean].to(value.dtype) if clean in deltas else value
    return merged
