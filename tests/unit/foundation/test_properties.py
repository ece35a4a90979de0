"""Property tests: parsers never raise on any text, and every trajectory survives the JSONL round trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.tools import PARSERS, ParseResult, parse_tool_calls
from turngym.trajectory import StopReason, Trajectory, Turn

FAST = settings(max_examples=150, deadline=None, database=None)

call_like = st.text(alphabet=st.sampled_from([*'<>/[]{}":, \nActionInput_tolcamex', "é", "🚀"]), max_size=80)
any_text = st.one_of(st.text(max_size=200), call_like)


@FAST
@given(text=any_text, parser=st.sampled_from(sorted(PARSERS)))
def test_parsers_never_raise_and_report_clipped_raw_text(text: str, parser: str) -> None:
    result = parse_tool_calls(text, parser)
    assert isinstance(result, ParseResult)
    for call in result.calls:
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)
    for error in result.errors:
        assert error.message and len(error.raw) <= 203


@FAST
@given(
    name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    arguments=st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20), st.none())),
)
def test_hermes_round_trips_any_json_call(name: str, arguments: dict[str, Any]) -> None:
    text = f"<tool_call>{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}</tool_call>"
    (call,) = parse_tool_calls(text, "hermes").calls
    assert (call.name, call.arguments) == (name, arguments)


leaf = st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=10), st.booleans(), st.none())
anchors = st.recursive(leaf, lambda inner: st.tuples(inner, inner) | st.tuples(inner), max_leaves=8)
infos = st.dictionaries(st.text(max_size=6), st.one_of(leaf, st.lists(leaf, max_size=3), anchors), max_size=4)


@st.composite
def turns(draw: st.DrawFn) -> Turn:
    action_ids = draw(st.lists(st.integers(0, 200_000), max_size=6))
    logprobs = draw(
        st.lists(st.floats(-50, 0, allow_nan=False), min_size=len(action_ids), max_size=len(action_ids))
    )
    return Turn(
        observation=draw(st.text(max_size=40)),
        action=draw(st.text(max_size=40)),
        reward=draw(st.floats(-10, 10, allow_nan=False)),
        anchor=draw(anchors),
        info=draw(infos),
        prompt_ids=tuple(draw(st.lists(st.integers(0, 200_000), max_size=6))),
        action_ids=tuple(action_ids),
        action_logprobs=tuple(logprobs) if draw(st.booleans()) else (),
    )


@FAST
@given(
    turn_list=st.lists(turns(), max_size=4),
    task_id=st.one_of(st.integers(0, 10**6), st.text(max_size=8), anchors),
    reason=st.sampled_from(list(StopReason)),
)
def test_any_trajectory_survives_the_json_round_trip(
    turn_list: list[Turn], task_id: Any, reason: StopReason
) -> None:
    traj = Trajectory("turngym/Maze-v0", task_id, 7, tuple(turn_list), reason, won=reason is StopReason.WON)
    again = Trajectory.from_dict(json.loads(json.dumps(traj.to_dict(), ensure_ascii=False)))
    assert again == traj
    assert again.token_ids == traj.token_ids and again.loss_mask == traj.loss_mask
