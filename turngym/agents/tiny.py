"""``hf:tiny``: a small Qwen2-architecture causal LM and its tokenizer, built locally in seconds.

Nothing can be downloaded from a model hub here, so the project makes its own model directory in
exactly the layout a real checkpoint has (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``tokenizer_config.json`` with a chat template, ``generation_config.json``)
and loads it through the same ``hf:PATH`` code path as any Qwen2.5/Llama checkpoint on disk.

* **Tokenizer**: byte-level BPE (GPT-2 style pre-tokenizer, so any text round-trips) trained with
  the ``tokenizers`` library on text the built-in environments produce: system prompts,
  observations and expert actions of Maze and Calculator episodes, in the chat format below.
  Special tokens follow Qwen2.5's names: ``<|endoftext|>`` (padding), ``<|im_start|>``,
  ``<|im_end|>`` (end of turn = end of sequence); ``<tool_call>``/``</tool_call>``,
  ``<tool_response>``/``</tool_response>`` and ``<think>``/``</think>`` are single added tokens
  that decoding keeps (as in Qwen2.5), so an env sees the tool-call markup the model wrote.
* **Chat template**: ChatML as Qwen2.5 writes it, ``<|im_start|>{role}\\n{content}<|im_end|>\\n``
  per message and ``<|im_start|>assistant\\n`` as the generation prompt; tool schemas, when given,
  are listed in the system turn inside ``<tools></tools>``.
* **Model**: ``Qwen2Config`` with hidden size 256, 4 layers, 8 attention heads of size 32 (vLLM's
  CPU attention needs head size >= 32), 4 key/value heads, MLP width 512 and tied embeddings:
  about 2.9 M parameters, initialised from ``torch.manual_seed(0)``.

Building is deterministic (same files, byte for byte, for the same :data:`TINY_VERSION`) and is
cached in ``$TURNGYM_CACHE/tiny-<version>`` (default ``~/.cache/turngym``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

TINY_VERSION = "v1"
"""Bump when the corpus, tokenizer or model config changes (a new cache directory is built)."""

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
VOCAB_SIZE = 2048

CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}"
    "{{- 'You may call these tools:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def cache_root() -> Path:
    """``$TURNGYM_CACHE`` or ``~/.cache/turngym``."""
    env = os.environ.get("TURNGYM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "turngym"


def tiny_path() -> Path:
    """Where the tiny model of this version lives (built or not)."""
    return cache_root() / f"tiny-{TINY_VERSION}"


def _chatml(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def training_corpus(episodes_per_env: int = 40) -> list[str]:
    """Deterministic chat-formatted text of expert episodes of the built-in toy environments."""
    from turngym.agents.baselines import run_episode
    from turngym.envs import make

    texts: list[str] = []
    for env_id in ("turngym/Maze-v0", "turngym/Calculator-v0"):
        env = make(env_id)
        for task in range(episodes_per_env):
            traj = run_episode(env, env_id, "expert", seed=task, task_id=task)
            parts = [_chatml("system", env.system_prompt)]
            for turn in traj.turns:
                parts += [_chatml("user", turn.observation), _chatml("assistant", turn.action)]
            texts.append("".join(parts))
        env.close()
    return texts


def build_tokenizer(corpus: list[str]) -> Any:
    """Train the byte-level BPE tokenizer on ``corpus``; a ``transformers.PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
        padding_side="left",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    wrapped.add_tokens(list(SPECIAL_TOKENS[3:]))  # tool/think markers: never split, kept by decode()
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_model(vocab_size: int, eos_id: int, pad_id: int) -> Any:
    """The randomly initialised tiny ``transformers.Qwen2ForCausalLM`` (seed 0)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[eos_id], pad_token_id=pad_id)
    return model


def build_tiny(path: str | Path) -> Path:
    """Build the tokenizer and model and save them at ``path`` (replacing what is there)."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    path = Path(path)
    tokenizer = build_tokenizer(training_corpus())
    model = build_model(len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)  # atomic: concurrent builders never see a half-written directory
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def ensure_tiny() -> Path:
    """The tiny model's directory, built on first use."""
    path = tiny_path()
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        build_tiny(path)
    return path


def directory_digest(path: str | Path) -> str:
    """SHA-256 over the names and bytes of every file in a model directory (determinism checks)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def describe(path: str | Path) -> dict[str, object]:
    """Config numbers of a saved model (for docs and the CLI)."""
    config = json.loads((Path(path) / "config.json").read_text())
    keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    return {k: config.get(k) for k in keys}
