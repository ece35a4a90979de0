"""The agent loop marks the turns whose action the env could not parse (the viewer highlights them)."""

from __future__ import annotations

from typing import Any

from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.scripted import ScriptedPolicy
from turngym.envs import make

CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'
WRONG_TOOL = '<tool_call>{"name": "abacus", "arguments": {"expression": "2+2"}}</tool_call>'


def test_parse_failures_are_flagged_per_turn(tiny_tokenizer: Any) -> None:
    policy = ScriptedPolicy(tiny_tokenizer, ["no markup at all", CALL, WRONG_TOOL, "still nothing"])
    config = LoopConfig(env_id="turngym/Calculator-v0", sampling=SamplingParams(max_new_tokens=64))
    (traj,) = run_batch(
        lambda: make("turngym/Calculator-v0", max_turns=4), policy, tiny_tokenizer, [(0, 0)], config
    )
    assert [t.info["parse_error"] for t in traj.turns] == [True, False, False, True]
    assert [t.info["invalid_action"] for t in traj.turns] == [True, False, True, True]  # a wrong tool parses
