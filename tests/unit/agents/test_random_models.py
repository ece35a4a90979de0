"""hf:random:<arch>: true shapes of public configs, meta-device parameter counts, the padded
tokenizer, and reproducible random weights."""

from __future__ import annotations

import re

import pytest
import torch

from turngym.agents.random_models import (
    ARCHS,
    arch_of,
    build_random,
    meta_model,
    padded_tokenizer,
    parameter_count,
)
from turngym.errors import ConfigError


def qwen2_params(vocab, hidden, inter, layers, heads, kv_heads, tied):
    """Hand count of a Qwen2 decoder: q/k/v carry biases, o and the MLP do not, two RMSNorms per
    layer and one at the end; the output embedding shares the input one when tied."""
    head = hidden // heads
    attention = hidden * hidden + hidden + 2 * (hidden * kv_heads * head + kv_heads * head) + hidden * hidden
    layer = attention + 3 * hidden * inter + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * layer + hidden


def test_parameter_counts_match_the_published_sizes_and_a_hand_count():
    # Qwen2.5-0.5B: 151936·896 + 24·14,912,384 + 896 = 494,032,768 ("0.49B" on its model card)
    assert parameter_count("qwen2.5-0.5b") == qwen2_params(151936, 896, 4864, 24, 14, 2, True) == 494_032_768
    assert parameter_count("qwen2.5-1.5b") == qwen2_params(151936, 1536, 8960, 28, 12, 2, True)
    assert (
        parameter_count("qwen2.5-7b") == qwen2_params(152064, 3584, 18944, 28, 28, 4, False) == 7_615_616_512
    )
    # Llama-3.2-1B: no biases, head size 64, tied: 128256·2048 + 16·60,821,504 + 2048
    assert parameter_count("llama-3.2-1b") == 128256 * 2048 + 16 * 60_821_504 + 2048 == 1_235_814_400


def test_meta_model_has_every_shape_and_no_storage():
    model = meta_model("qwen2.5-7b")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (4 * 128, 3584)
    assert model.lm_head.weight.shape == (152064, 3584)
    assert model.lm_head.weight is not model.model.embed_tokens.weight  # 7B does not tie them
    small = meta_model("qwen2.5-0.5b")
    assert small.lm_head.weight is small.model.embed_tokens.weight
    assert small.config.rope_parameters["rope_theta"] == 1_000_000.0
    llama = meta_model("llama-3.2-1b").config.rope_parameters
    assert (llama["rope_theta"], llama["rope_type"], llama["factor"]) == (500_000.0, "llama3", 32.0)


def test_every_entry_names_its_source_and_unknown_archs_are_refused():
    assert all(entry["source"].startswith("https://huggingface.co/") for entry in ARCHS.values())
    with pytest.raises(ConfigError, match=re.escape("known: llama-3.2-1b, qwen2.5-0.5b")):
        arch_of("random:gpt-5")


def test_padded_tokenizer_fills_the_vocabulary_and_encodes_as_before(tiny_tokenizer):
    padded = padded_tokenizer(tiny_tokenizer, 5000)
    assert len(padded) == 5000
    text = "<|im_start|>user\nmove north<|im_end|>\n"
    assert padded(text).input_ids == tiny_tokenizer(text).input_ids
    assert padded.decode([4999]) == "<|fill_4999|>"
    assert padded.eos_token_id == tiny_tokenizer.eos_token_id
    with pytest.raises(ConfigError, match="cannot pad"):
        padded_tokenizer(tiny_tokenizer, 10)


def test_random_weights_are_reproducible_and_the_same_in_every_dtype():
    overrides = {"num_hidden_layers": 1, "vocab_size": 4096}
    tok, a = build_random("random:qwen2.5-0.5b", **overrides)
    _, b = build_random("random:qwen2.5-0.5b", **overrides)
    _, c = build_random("random:qwen2.5-0.5b", dtype=torch.bfloat16, **overrides)
    assert len(tok) == 4096 == a.config.vocab_size
    assert a.config.hidden_size == 896 and a.config.num_key_value_heads == 2
    w = a.model.layers[0].mlp.up_proj.weight.detach()
    assert torch.equal(w, b.model.layers[0].mlp.up_proj.weight)
    assert torch.equal(w.bfloat16(), c.model.layers[0].mlp.up_proj.weight)
    assert 0.015 < float(w.std()) < 0.025  # transformers' initialiser: normal, std 0.02
