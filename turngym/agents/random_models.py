"""``hf:random:<arch>``: randomly initialised models with the true shapes of public checkpoints.

Nothing can be downloaded here, yet memory and speed only mean something at real scale. Each
entry of :data:`ARCHS` copies the shape fields of the model's public ``config.json`` on the
Hugging Face Hub (the URL is in the entry): hidden size, layers, attention and key/value heads,
head size, MLP width, vocabulary, RoPE θ (and Llama-3's RoPE scaling), RMSNorm ε and whether the
output embedding is tied to the input one. Weights are drawn by ``transformers``' own initialiser
(normal, std 0.02) from ``torch.manual_seed(seed)`` in fp32 on the target device and then cast,
so the same (arch, seed, device type) gives the same weights in every dtype.

The tokenizer is the project's tiny byte-level BPE (:mod:`turngym.agents.tiny`) padded with
never-produced filler tokens ``<|fill_N|>`` up to the architecture's vocabulary, so every id the
model can sample decodes to text and ``len(tokenizer) == vocab_size``; the chat template and the
special tokens are the tiny model's (ChatML).

:func:`meta_model` builds the model on PyTorch's ``meta`` device (shapes, no storage): a 7B
configuration costs no memory, which is what parameter counts and memory estimates need.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from turngym.errors import ConfigError

_QWEN = {"model_type": "qwen2", "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "hidden_act": "silu"}
ARCHS: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {
        **_QWEN,
        "source": "https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
    },
    "qwen2.5-1.5b": {
        **_QWEN,
        "source": "https://huggingface.co/Qwen/Qwen2.5-1.5B/blob/main/config.json",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": True,
    },
    "qwen2.5-7b": {
        **_QWEN,
        "source": "https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    "llama-3.2-1b": {
        "model_type": "llama",
        "source": "https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500_000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "hidden_act": "silu",
        "tie_word_embeddings": True,
    },
}
PREFIX = "random:"


def is_random_spec(spec: str | Path) -> bool:
    """Whether a model spec (what follows ``hf:``) names a random architecture."""
    return str(spec).startswith(PREFIX)


def arch_of(spec: str | Path) -> str:
    """The architecture name of ``random:<arch>``; a ConfigError lists the known ones."""
    arch = str(spec).removeprefix(PREFIX)
    if arch not in ARCHS:
        raise ConfigError(f"hf:random:{arch} is not a known architecture; known: {', '.join(sorted(ARCHS))}")
    return arch


def random_config(arch: str, *, num_hidden_layers: int | None = None, vocab_size: int | None = None) -> Any:
    """The ``transformers`` config of ``arch`` (optionally with fewer layers or another vocabulary,
    for benchmarks that isolate one factor)."""
    from transformers import AutoConfig

    fields = {k: v for k, v in ARCHS[arch_of(arch)].items() if k not in ("model_type", "source")}
    if num_hidden_layers is not None:
        fields["num_hidden_layers"] = num_hidden_layers
    if vocab_size is not None:
        fields["vocab_size"] = vocab_size
    config = AutoConfig.for_model(ARCHS[arch_of(arch)]["model_type"], **fields)
    config.use_cache = True
    return config


def meta_model(arch: str, **overrides: Any) -> torch.nn.Module:
    """``arch`` built on the meta device: every shape, no storage."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model: torch.nn.Module = AutoModelForCausalLM.from_config(random_config(arch, **overrides))
    return model


def parameter_count(arch: str, **overrides: Any) -> int:
    """Parameters of ``arch`` (a tied output embedding counted once)."""
    return sum(p.numel() for p in meta_model(arch, **overrides).parameters())


def padded_tokenizer(tokenizer: Any, vocab_size: int) -> Any:
    """A copy of a fast tokenizer whose vocabulary is filled up to ``vocab_size`` with tokens
    ``<|fill_N|>`` (id N) that no text encodes to; encoding and the special tokens are unchanged."""
    from transformers import AutoTokenizer

    have = len(tokenizer)
    if vocab_size < have:
        raise ConfigError(f"cannot pad a tokenizer of {have} tokens down to a vocabulary of {vocab_size}")
    with tempfile.TemporaryDirectory(prefix="turngym-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        data = json.loads(path.read_text())
        vocab = data["model"]["vocab"]
        for token_id in range(have, vocab_size):
            vocab[f"<|fill_{token_id}|>"] = token_id
        path.write_text(json.dumps(data, ensure_ascii=False))
        return AutoTokenizer.from_pretrained(tmp)


def build_random(
    spec: str, *, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0, **overrides: Any
) -> tuple[Any, torch.nn.Module]:
    """``(tokenizer, model)`` of ``random:<arch>`` (see the module docstring)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from turngym.agents.tiny import ensure_tiny

    config = random_config(spec, **overrides)
    tokenizer = padded_tokenizer(AutoTokenizer.from_pretrained(ensure_tiny()), config.vocab_size)
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = None
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        if torch.device(device).type == "cuda":
            torch.cuda.manual_seed(seed)
        model: torch.nn.Module = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = model.to(dtype).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id
    )
    model.config._name_or_path = spec
    return tokenizer, model
