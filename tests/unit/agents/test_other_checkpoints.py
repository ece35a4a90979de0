"""``hf:PATH`` beyond the tiny model: another architecture and chat templates of other families."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from turngym.agents.chat import ChatFormat
from turngym.agents.hf import HFPolicy, sequence_logprobs
from turngym.agents.loop import run_group
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.envs import make

# Qwen2.5's habit: a default system prompt when the conversation has none.
DEFAULT_SYSTEM = (
    "{%- if messages[0].role != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Llama 3's layout: a leading begin-of-text token, a header marker after the role (the tiny vocabulary's
# <tool_response> stands in for <|end_header_id|>), the end-of-turn token right after the content.
LLAMA3_STYLE = (
    "{{- '<|endoftext|>' }}"
    "{%- for m in messages %}"
    "{{- '<|im_start|>' + m.role + '<tool_response>\\n\\n' + m.content + '<|im_end|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant<tool_response>\\n\\n' }}{%- endif %}"
)


def _llama_dir(tiny_tokenizer: Any, path: Path, template: str) -> Path:
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=tiny_tokenizer.pad_token_id,
        bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(path)
    return path


def test_default_system_prompt_templates_probe_cleanly(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = DEFAULT_SYSTEM
    fmt = ChatFormat.probe(tokenizer, "")
    assert tokenizer.decode(fmt.first_prompt("hi")).startswith(
        "<|im_start|>system\nYou are a helpful assistant."
    )
    assert (fmt.glue, fmt.suffix) == ("<|im_end|>\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n")


def test_a_llama_checkpoint_with_a_llama3_style_template_rolls_out_exactly(
    tiny_tokenizer: Any, tmp_path: Path
) -> None:
    policy = HFPolicy.from_pretrained(
        _llama_dir(tiny_tokenizer, tmp_path / "llama", LLAMA3_STYLE), num_threads=1
    )
    assert type(policy.model).__name__ == "LlamaForCausalLM"
    fmt = ChatFormat.probe(policy.tokenizer, "S")
    assert fmt.glue == "<|im_end|><|im_start|>user<tool_response>\n\n"
    assert fmt.suffix == "<|im_end|><|im_start|>assistant<tool_response>\n\n"
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=5, seed=2))
    trajs = run_group(lambda: make("turngym/Maze-v0", max_turns=3), policy, policy.tokenizer, 4, 0, 2, config)
    for traj in trajs:
        assert traj.token_ids[0] == policy.tokenizer.pad_token_id  # the template's own leading token
        ids, consumed = traj.token_ids, 0
        for turn in traj.turns:
            consumed += len(turn.prompt_ids)
            reference = sequence_logprobs(policy.model, ids[:consumed], turn.action_ids)
            assert torch.allclose(torch.tensor(turn.action_logprobs), reference, atol=1e-4, rtol=0)
            consumed += len(turn.action_ids)
        text = policy.tokenizer.decode(ids)
        assert text.count("<|im_start|>user<tool_response>\n\n") == len(traj.turns)
    assert policy.cache_hits >= 2
