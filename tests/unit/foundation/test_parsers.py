"""The hermes, react and bracket tool-call parsers on valid, malformed and adversarial text."""

from __future__ import annotations

import json
import time

import pytest

from turngym.errors import ToolError
from turngym.tools import PARSERS, ParseResult, ToolCall, parse_tool_calls

ONE_MB = 1 << 20


def only_call(result: ParseResult) -> ToolCall:
    assert result.ok, result
    assert len(result.calls) == 1
    return result.calls[0]


def first_error(result: ParseResult) -> str:
    assert not result.calls, result
    assert result.errors, result
    return result.errors[0].message


# ---- hermes -------------------------------------------------------------------------------------
def test_hermes_single_call_with_surrounding_text() -> None:
    body = '{"name": "calculator", "arguments": {"expression": "2+3"}}'
    text = f"Let me compute.\n<tool_call>\n{body}\n</tool_call>"
    call = only_call(parse_tool_calls(text, "hermes"))
    assert call.name == "calculator"
    assert call.arguments == {"expression": "2+3"}


def test_hermes_several_calls_in_order() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call> and '
        '<tool_call>{"name": "b", "arguments": {"y": [1, {"z": 2}]}}</tool_call>'
    )
    result = parse_tool_calls(text, "hermes")
    assert [(c.name, c.arguments) for c in result.calls] == [("a", {"x": 1}), ("b", {"y": [1, {"z": 2}]})]
    assert result.errors == ()


def test_hermes_arguments_as_json_string_and_missing_arguments() -> None:
    text = (
        '<tool_call>{"name": "f", "arguments": "{\\"q\\": \\"hi\\"}"}</tool_call>'
        '<tool_call>{"name": "g"}</tool_call>'
    )
    result = parse_tool_calls(text, "hermes")
    assert [(c.name, c.arguments) for c in result.calls] == [("f", {"q": "hi"}), ("g", {})]


def test_hermes_nested_braces_and_unicode_survive() -> None:
    args = {"code": "d = {'a': {'b': {}}}; print('}}{{')", "city": "Zürich 東京 🚀"}
    text = f'<tool_call>{{"name": "run", "arguments": {json.dumps(args, ensure_ascii=False)}}}</tool_call>'
    assert only_call(parse_tool_calls(text, "hermes")).arguments == args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<tool_call>{not json}</tool_call>", "not valid JSON"),
        ('<tool_call>["name", "f"]</tool_call>', "must be a JSON object, got list"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'needs a string "name"'),
        ('<tool_call>{"name": 7}</tool_call>', 'needs a string "name"'),
        (
            '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',
            '"arguments" must be a JSON object, got list',
        ),
        (
            '<tool_call>{"name": "f", "arguments": "{oops"}</tool_call>',
            '"arguments" string is not valid JSON',
        ),
        ('<tool_call>{"name": "f", "arguments": {}}', "unclosed <tool_call>"),
    ],
)
def test_hermes_malformed_calls_are_parse_errors(text: str, expected: str) -> None:
    assert expected in first_error(parse_tool_calls(text, "hermes"))


def test_hermes_closing_tag_inside_a_string_argument() -> None:
    code = 'html = "<p>a</p></tool_call>"\nprint(html)'
    text = f"<tool_call>{json.dumps({'name': 'python', 'arguments': {'code': code}})}</tool_call> done"
    assert only_call(parse_tool_calls(text, "hermes")).arguments == {"code": code}


def test_hermes_opening_tag_inside_a_string_argument_is_a_parse_error() -> None:
    """A documented limit: the decoder stops at the next ``<tool_call>`` to stay linear."""
    code = 'print("<tool_call>x</tool_call>")'
    text = f"<tool_call>{json.dumps({'name': 'python', 'arguments': {'code': code}})}</tool_call>"
    assert "not valid JSON" in first_error(parse_tool_calls(text, "hermes"))


def test_hermes_text_after_the_json_falls_back_to_the_closing_tag() -> None:
    text = '<tool_call>{"name": "f"} trailing words</tool_call><tool_call>{"name": "g"}</tool_call>'
    result = parse_tool_calls(text, "hermes")
    assert [c.name for c in result.calls] == ["g"]
    assert "not valid JSON (Extra data" in result.errors[0].message


def test_hermes_deeply_nested_arguments_string_is_a_parse_error() -> None:
    text = f"<tool_call>{json.dumps({'name': 'f', 'arguments': '[' * 100_000})}</tool_call>"
    assert '"arguments" string is not valid JSON' in first_error(parse_tool_calls(text, "hermes"))


def test_react_deeply_nested_input_is_kept_as_text() -> None:
    value = '{"a": ' + "[" * 100_000
    call = only_call(parse_tool_calls(f"Action: f\nAction Input: {value}", "react"))
    assert call.arguments == {"input": value}


def test_hermes_good_and_bad_calls_are_both_reported() -> None:
    text = (
        '<tool_call>{"name": "a"}</tool_call><tool_call>{bad}</tool_call><tool_call>{"name": "b"}</tool_call>'
    )
    result = parse_tool_calls(text, "hermes")
    assert [c.name for c in result.calls] == ["a", "b"]
    assert len(result.errors) == 1
    assert not result.ok


def test_hermes_no_call_is_not_ok_and_not_an_error() -> None:
    result = parse_tool_calls('just thinking out loud {"name": "f"}', "hermes")
    assert result.calls == () and result.errors == ()
    assert not result.ok


def test_hermes_error_raw_text_is_clipped() -> None:
    result = parse_tool_calls("<tool_call>" + "x" * 10_000 + "</tool_call>", "hermes")
    assert len(result.errors[0].raw) == 203  # 200 characters and "..."


# ---- react --------------------------------------------------------------------------------------
def test_react_inline_brackets() -> None:
    call = only_call(parse_tool_calls("Thought: look it up\nAction: search[capital of France]", "react"))
    assert (call.name, call.arguments) == ("search", {"input": "capital of France"})


def test_react_inline_json_object() -> None:
    call = only_call(parse_tool_calls('Action: calculator[{"expression": "[1] + 2"}]', "react"))
    assert call.arguments == {"expression": "[1] + 2"}


def test_react_action_input_stops_at_next_section() -> None:
    text = 'Thought: t\nAction: lookup\nAction Input: {"term": "ü{}"}\nObservation: (pending)\nThought: more'
    call = only_call(parse_tool_calls(text, "react"))
    assert (call.name, call.arguments) == ("lookup", {"term": "ü{}"})


def test_react_plain_action_input_and_no_input() -> None:
    text = "Action: search\nAction Input: red shoes size 9\n"
    assert only_call(parse_tool_calls(text, "react")).arguments == {"input": "red shoes size 9"}
    assert only_call(parse_tool_calls("Action: finish", "react")).arguments == {}


def test_react_only_the_first_action_counts() -> None:
    call = only_call(parse_tool_calls("Action: a[1]\nAction: b[2]", "react"))
    assert (call.name, call.arguments) == ("a", {"input": "1"})


def test_react_broken_json_input_is_kept_as_text() -> None:
    call = only_call(parse_tool_calls("Action: f\nAction Input: {broken", "react"))
    assert call.arguments == {"input": "{broken"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I will answer directly.", "no 'Action:' line"),
        ("Action: 42[x]", "must be followed by a tool name"),
        ("Action:   \nAction Input: x", "must be followed by a tool name"),
        ("Action: search[unclosed [nested]", "unbalanced brackets"),
    ],
)
def test_react_malformed(text: str, expected: str) -> None:
    assert expected in first_error(parse_tool_calls(text, "react"))


# ---- bracket ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name", "arg"),
    [
        ("search[red running shoes]", "search", "red running shoes"),
        ("I should go back. click[< Prev]", "click", "< Prev"),
        ("search[3 [pack] socks]", "search", "3 [pack] socks"),
        ("search[size x[large]]", "search", "size x[large]"),
        ("search[a] then, on second thought, click[b]", "click", "b"),
        ("click[a]search[b]", "search", "b"),
        ("click[  Buy Now  ]", "click", "Buy Now"),
        ("search[Äpfel 🍎 東京]", "search", "Äpfel 🍎 東京"),
        ("]]] stray ] click[x] ]", "click", "x"),
    ],
)
def test_bracket_valid(text: str, name: str, arg: str) -> None:
    call = only_call(parse_tool_calls(text, "bracket"))
    assert (call.name, call.arguments) == (name, {"arg": arg})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I don't know what to do", "no action of the form name[argument]"),
        ("[just brackets]", "no action of the form name[argument]"),
        ("search[a] click[", "unbalanced brackets"),
        ("search[foo click[x]", "unbalanced brackets"),
    ],
)
def test_bracket_malformed(text: str, expected: str) -> None:
    assert expected in first_error(parse_tool_calls(text, "bracket"))


# ---- dispatch and adversarial size ---------------------------------------------------------------
def test_unknown_parser_names_the_choices() -> None:
    with pytest.raises(ToolError, match=r"unknown tool-call parser 'xml'.*\['bracket', 'hermes', 'react'\]"):
        parse_tool_calls("x", "xml")


ADVERSARIAL = {
    "nested_open_brackets": "a[" * (ONE_MB // 2),
    "open_brackets": "[" * ONE_MB,
    "closed_calls": "a[]" * (ONE_MB // 3),
    "unclosed_tags": "<tool_call>" * (ONE_MB // 11),
    "deep_json": '<tool_call>{"name": "f", "arguments": ' + "[" * ONE_MB + "</tool_call>",
    "deep_json_string": '<tool_call>{"name": "f", "arguments": "' + "[" * ONE_MB + '"}</tool_call>',
    "deep_react_input": 'Action: f\nAction Input: {"a": ' + "[" * ONE_MB,
    "strings_across_tags": '<tool_call>"' + "x</tool_call><tool_call>" * (ONE_MB // 24) + '"',
    "quoted_tags": '<tool_call>["</tool_call>' * (ONE_MB // 24),
    "many_calls": '<tool_call>{"name": "f"}</tool_call>' * (ONE_MB // 36),
    "blank_lines": (" \t" * 1000 + "\n") * (ONE_MB // 2001),
    "long_name": "Action: " + "a" * ONE_MB + "[",
    "many_inputs": "Action: f\n" + "Action Input: x\n" * (ONE_MB // 16),
    "empty_actions": "Action:\n" * (ONE_MB // 8),
    "unicode": "東京[🚀" * (ONE_MB // 4),
}


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_one_megabyte_of_hostile_text_is_parsed_quickly(parser: str, case: str) -> None:
    text = ADVERSARIAL[case]
    assert len(text) >= ONE_MB * 0.99
    start = time.perf_counter()
    result = parse_tool_calls(text, parser)
    elapsed = time.perf_counter() - start
    assert isinstance(result, ParseResult)
    # Linear parsing of 1 MB takes at most about a second here even on a loaded machine; a quadratic
    # parser (e.g. decoding JSON from each tag to the end of the text) took 25 s on these inputs.
    assert elapsed < 5.0, f"{parser} took {elapsed:.2f}s on {case}"
    for error in result.errors:
        assert len(error.raw) <= 203


def test_adversarial_results_are_the_expected_ones() -> None:
    assert "unbalanced" in first_error(parse_tool_calls(ADVERSARIAL["nested_open_brackets"], "bracket"))
    assert "not valid JSON" in first_error(parse_tool_calls(ADVERSARIAL["deep_json"], "hermes"))
    many = parse_tool_calls(ADVERSARIAL["many_calls"], "hermes")
    assert len(many.calls) == ONE_MB // 36 and many.errors == ()
    assert len(parse_tool_calls(ADVERSARIAL["unclosed_tags"], "hermes").errors) == 1
