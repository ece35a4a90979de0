"""The tiny model: deterministic build, real checkpoint layout, tokenizer and chat template."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from turngym.agents import tiny
from turngym.agents.hf import HFPolicy, load_tokenizer_and_model
from turngym.errors import ConfigError


def test_build_is_deterministic_byte_for_byte(tiny_dir: Path, tmp_path: Path) -> None:
    again = tiny.build_tiny(tmp_path / "again")
    assert tiny.directory_digest(again) == tiny.directory_digest(tiny_dir)


def test_directory_has_the_layout_of_a_real_checkpoint(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    info = tiny.describe(tiny_dir)
    assert info["model_type"] == "qwen2"
    assert info["hidden_size"] // info["num_attention_heads"] >= 32  # vLLM's CPU kernels need it


def test_loads_through_the_hf_path_code_path(tiny_dir: Path) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir)
    params = sum(p.numel() for p in policy.model.parameters())
    assert 1_000_000 < params < 10_000_000
    assert type(policy.model).__name__ == "Qwen2ForCausalLM"
    assert policy.eos_ids == {policy.tokenizer.convert_tokens_to_ids("<|im_end|>")}


def test_ensure_tiny_builds_once_in_turngym_cache(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []

    def fake_build(path: Path) -> Path:  # a copy of the session's build stands in for a rebuild
        builds.append(path)
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(tiny_dir, path)
        return path

    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny, "build_tiny", fake_build)
    path = tiny.ensure_tiny()
    assert path == tmp_path / f"tiny-{tiny.TINY_VERSION}" and builds == [path]
    assert tiny.ensure_tiny() == path and builds == [path]  # cached, not rebuilt
    (path / "model.safetensors").unlink()  # a half-present directory is rebuilt
    assert tiny.ensure_tiny() == path and len(builds) == 2


def test_not_a_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no config\.json"):
        load_tokenizer_and_model(tmp_path)


def test_chat_template_renders_chatml(tiny_tokenizer: Any) -> None:
    text = tiny_tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_chat_template_lists_tools_in_the_system_turn(tiny_tokenizer: Any) -> None:
    tool = {"type": "function", "function": {"name": "calc"}}
    text = tiny_tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tools=[tool], tokenize=False
    )
    assert text.startswith(
        '<|im_start|>system\nS\n\nYou may call these tools:\n<tools>\n{"type": "function", '
        '"function": {"name": "calc"}}\n</tools><|im_end|>\n<|im_start|>user\nU'
    )


@pytest.mark.parametrize("marker", ["<tool_call>", "</tool_call>", "<think>", "</think>", "<|im_end|>"])
def test_markers_are_single_tokens(tiny_tokenizer: Any, marker: str) -> None:
    assert len(tiny_tokenizer.encode(marker, add_special_tokens=False)) == 1


def test_any_text_round_trips_and_decode_keeps_tool_markup(tiny_tokenizer: Any) -> None:
    text = 'go north ☃ 日本 <tool_call>{"name": "calculator"}</tool_call>'
    ids = tiny_tokenizer.encode(text + "<|im_end|>", add_special_tokens=False)
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == text
