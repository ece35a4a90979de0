"""Model-free token policies: scripted replies, expert and random actions as completions."""

from __future__ import annotations

from typing import Any

import pytest

from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.scripted import ExpertPolicy, RandomPolicy, ScriptedPolicy
from turngym.envs import make
from turngym.errors import ConfigError, PolicyError


def test_scripted_replies_cycle_and_end_with_eos(tiny_tokenizer: Any) -> None:
    policy = ScriptedPolicy(tiny_tokenizer, ["go north", "go east"])
    out = policy.generate([[1], [1]], SamplingParams(n=2, entropies=True))
    assert [c.text for c in out] == ["go north", "go east", "go north", "go east"]
    eos = tiny_tokenizer.eos_token_id
    assert out[0].token_ids == (*tiny_tokenizer.encode("go north", add_special_tokens=False), eos)
    assert out[0].logprobs == out[0].entropies == (0.0,) * len(out[0].token_ids)
    assert out[0].finish_reason == "stop"


def test_scripted_replies_are_cut_at_max_new_tokens(tiny_tokenizer: Any) -> None:
    (c,) = ScriptedPolicy(tiny_tokenizer, ["go north and then go east"]).generate(
        [[1]], SamplingParams(max_new_tokens=2)
    )
    assert (
        len(c.token_ids) == 2
        and c.finish_reason == "length"
        and tiny_tokenizer.eos_token_id not in c.token_ids
    )


def test_scripted_reply_function_sees_the_prompt(tiny_tokenizer: Any) -> None:
    policy = ScriptedPolicy(tiny_tokenizer, lambda prompt: f"go {'north' if len(prompt) > 2 else 'south'}")
    assert [c.text for c in policy.generate([[1, 2, 3], [1]], SamplingParams())] == ["go north", "go south"]
    with pytest.raises(ConfigError, match="at least one reply"):
        ScriptedPolicy(tiny_tokenizer, [])


def test_random_policy_plays_admissible_actions(tiny_tokenizer: Any) -> None:
    trajs = run_batch(
        lambda: make("turngym/Maze-v0", max_turns=5), RandomPolicy(tiny_tokenizer, seed=1), tiny_tokenizer,
        [(0, 0), (1, 0)], LoopConfig(),
    )  # fmt: skip
    assert all(not turn.info["invalid_action"] for t in trajs for turn in t.turns)
    assert all(turn.action.startswith("go ") for t in trajs for turn in t.turns)


def test_env_policies_need_the_loop_to_attach_envs(tiny_tokenizer: Any) -> None:
    with pytest.raises(PolicyError, match="attached to 0 envs but got 1 prompts"):
        ExpertPolicy(tiny_tokenizer).generate([[1]], SamplingParams())
