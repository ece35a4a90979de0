"""Chat formatting: the glue found by probing a template, and the actions an env receives."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from turngym.agents.chat import ChatFormat, action_text
from turngym.errors import ConfigError


def test_probe_finds_chatml_glue(tiny_tokenizer: Any) -> None:
    fmt = ChatFormat.probe(tiny_tokenizer, "Be brief.")
    assert fmt.glue == "<|im_end|>\n<|im_start|>user\n"
    assert fmt.suffix == "<|im_end|>\n<|im_start|>assistant\n"
    eos = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert fmt.eos_ids == {eos}
    tail = fmt.continuation("obs", [11, eos])  # the policy sampled the end of its turn
    assert tiny_tokenizer.decode(tail) == "\n<|im_start|>user\nobs<|im_end|>\n<|im_start|>assistant\n"
    cut = fmt.continuation("obs", [11, 12])  # the turn was cut by max_new_tokens: close it
    assert (
        tiny_tokenizer.decode(cut) == "<|im_end|>\n<|im_start|>user\nobs<|im_end|>\n<|im_start|>assistant\n"
    )


def test_first_prompt_equals_the_template(tiny_tokenizer: Any) -> None:
    fmt = ChatFormat.probe(tiny_tokenizer, "")
    assert (
        tiny_tokenizer.decode(fmt.first_prompt("hi"))
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_tokenizer_without_a_template_is_a_clear_error(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="no chat_template"):
        ChatFormat.probe(tokenizer, "")


def test_a_template_that_hides_contents_is_a_clear_error(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = "{% for m in messages %}{{ m.role }}{% endfor %}"
    with pytest.raises(ConfigError, match="verbatim"):
        ChatFormat.probe(tokenizer, "")


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("  go north \n", "go north"),
        ("<think>walls everywhere</think>\ngo east", "go east"),
        ("<think>a\nb</think>go <think>x</think>west", "go west"),
        ("<think>never closed", ""),
    ],
)
def test_action_text_drops_reasoning(text: str, action: str) -> None:
    assert action_text(text) == action
