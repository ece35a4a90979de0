"""Parsers that turn model text into tool calls.

Formats (each parser runs in time linear in the text, so 1 MB of hostile text is cheap):

* ``hermes`` — ``<tool_call>{"name": "f", "arguments": {...}}</tool_call>``, any number per
  message (Hermes / Qwen2.5 function calling). ``arguments`` may also be a JSON-encoded string.
  The JSON is decoded before the closing tag is looked for, so a string argument may itself
  contain ``</tool_call>`` (but not ``<tool_call>``: decoding stops at the next opening tag).
* ``react`` — ``Action: f[args]`` or ``Action: f`` followed by ``Action Input: args`` (ReAct).
  A JSON-object input becomes the arguments; any other input becomes ``{"input": text}``.
* ``bracket`` — the WebShop/ALFWorld-style grammar ``search[query]`` / ``click[button]``: the
  *last* ``name[...]`` in the text that is not nested in another one, as ``{"arg": text}``. Brackets
  inside the argument must balance (``click[< Prev]`` works; so do ``search[3 [pack] socks]`` and
  ``search[size x[large]]``, whose inner ``x[..]`` is part of the query, not an action).

A parser never raises on model text: malformed calls come back as :class:`ParseError` entries of
the :class:`ParseResult`, which an env turns into an observation (and counts as a parse failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turngym.errors import ToolError


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name and its JSON arguments."""

    name: str
    arguments: dict[str, Any]
    raw: str = ""


@dataclass(frozen=True)
class ParseError:
    """A call-shaped span that could not be parsed, with the reason."""

    message: str
    raw: str = ""


@dataclass(frozen=True)
class ParseResult:
    """All calls found in a message and all malformed call attempts."""

    calls: tuple[ToolCall, ...] = ()
    errors: tuple[ParseError, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """At least one call and no errors."""
        return bool(self.calls) and not self.errors


_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_RAW_CHARS = 200


def _clip(text: str) -> str:
    return text if len(text) <= _RAW_CHARS else text[:_RAW_CHARS] + "..."


_DECODER = json.JSONDecoder()
_NOT_JSON = (json.JSONDecodeError, RecursionError)  # RecursionError: nesting deeper than Python's stack


def _call_from_json(body: str) -> ToolCall | ParseError:
    try:
        data = json.loads(body)
    except _NOT_JSON as exc:
        return ParseError(f"tool call is not valid JSON ({exc})", _clip(body))
    return _call_from_data(data, body)


def _call_from_data(data: Any, body: str) -> ToolCall | ParseError:
    if not isinstance(data, dict):
        return ParseError(f"tool call must be a JSON object, got {type(data).__name__}", _clip(body))
    name = data.get("name")
    if not isinstance(name, str) or not name:
        return ParseError('tool call needs a string "name"', _clip(body))
    args = data.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except _NOT_JSON as exc:
            return ParseError(f'"arguments" string is not valid JSON ({exc})', _clip(body))
    if not isinstance(args, dict):
        return ParseError(f'"arguments" must be a JSON object, got {type(args).__name__}', _clip(body))
    return ToolCall(name, args, _clip(body))


def _json_then_close(text: str, body_start: int) -> tuple[Any, int] | None:
    """The JSON value at ``body_start`` and the end of the ``</tool_call>`` right after it, if so.

    Decoding first lets a string argument contain the text ``</tool_call>`` (code, HTML). The
    decoder sees only the text up to the next ``<tool_call>``, so the work over all calls of a
    message stays linear in its length.
    """
    next_open = text.find(_OPEN, body_start)
    segment = text[body_start : len(text) if next_open == -1 else next_open]
    begin = len(segment) - len(segment.lstrip())
    try:
        data, end = _DECODER.raw_decode(segment, begin)
    except _NOT_JSON:
        return None
    rest = segment[end:].lstrip()
    if not rest.startswith(_CLOSE):
        return None
    return data, body_start + len(segment) - len(rest) + len(_CLOSE)


def parse_hermes(text: str) -> ParseResult:
    """Every ``<tool_call>{json}</tool_call>`` block in ``text``."""
    calls: list[ToolCall] = []
    errors: list[ParseError] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) != -1:
        body_start = start + len(_OPEN)
        decoded = _json_then_close(text, body_start)
        if decoded is not None:
            data, pos = decoded
            result = _call_from_data(data, text[body_start : pos - len(_CLOSE)].strip())
        else:
            end = text.find(_CLOSE, body_start)
            if end == -1:
                errors.append(ParseError("unclosed <tool_call>: add </tool_call>", _clip(text[start:])))
                break
            result = _call_from_json(text[body_start:end].strip())
            pos = end + len(_CLOSE)
        if isinstance(result, ToolCall):
            calls.append(result)
        else:
            errors.append(result)
    return ParseResult(tuple(calls), tuple(errors))


def _balanced_end(text: str, open_at: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``open_at``, or -1."""
    depth = 0
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return i
    return -1


_BRACKET_RE = re.compile(r"(?<!\w)([A-Za-z_][\w-]*)\[")


def _closing_brackets(text: str) -> dict[int, int]:
    """Map the index of every ``[`` that gets closed to the index of its ``]`` (one linear pass)."""
    closing: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch == "[":
            stack.append(i)
        elif ch == "]" and stack:
            closing[stack.pop()] = i
    return closing


def parse_bracket(text: str) -> ParseResult:
    """The last ``name[argument]`` in ``text`` that is not nested inside another one (WebShop/ALFWorld)."""
    closing = _closing_brackets(text)
    match, end, covered_to = None, -1, -1
    for candidate in _BRACKET_RE.finditer(text):
        if candidate.start() <= covered_to:
            continue  # inside the argument of an earlier action, e.g. the x[..] of search[size x[large]]
        match, end = candidate, closing.get(candidate.end() - 1, -1)
        covered_to = len(text) if end == -1 else end
    if match is None:
        return ParseResult(errors=(ParseError("no action of the form name[argument] found", _clip(text)),))
    if end == -1:
        return ParseResult(
            errors=(ParseError("unbalanced brackets: close the action with ]", _clip(text[match.start() :])),)
        )
    raw = text[match.start() : end + 1]
    return ParseResult(
        calls=(ToolCall(match.group(1), {"arg": text[match.end() : end].strip()}, _clip(raw)),)
    )


_ACTION_RE = re.compile(r"^[ \t]*Action:[ \t]*(.*)$", re.MULTILINE)
_INPUT_RE = re.compile(r"^[ \t]*Action Input:[ \t]*", re.MULTILINE)
_REACT_NAME_RE = re.compile(r"^([A-Za-z_][\w-]*)(\[)?")


def _react_arguments(value: str) -> dict[str, Any]:
    value = value.strip()
    if value.startswith("{"):
        try:
            parsed = json.loads(value)
        except _NOT_JSON:
            return {"input": value}
        if isinstance(parsed, dict):
            return parsed
    return {"input": value}


def parse_react(text: str) -> ParseResult:
    """The first ``Action: name[args]`` or ``Action: name`` + ``Action Input: args`` in ``text``."""
    action = _ACTION_RE.search(text)
    if action is None:
        return ParseResult(errors=(ParseError("no 'Action:' line found", _clip(text)),))
    line = action.group(1).strip()
    head = _REACT_NAME_RE.match(line)
    if head is None:
        return ParseResult(errors=(ParseError("'Action:' must be followed by a tool name", _clip(line)),))
    name = head.group(1)
    if head.group(2):
        end = _balanced_end(line, head.end() - 1)
        if end == -1:
            return ParseResult(errors=(ParseError("unbalanced brackets in Action", _clip(line)),))
        return ParseResult(calls=(ToolCall(name, _react_arguments(line[head.end() : end]), _clip(line)),))
    given = _INPUT_RE.search(text, action.end())
    if given is None:
        return ParseResult(calls=(ToolCall(name, {}, _clip(line)),))
    rest = text[given.end() :]
    stop = re.search(r"^[ \t]*(Observation|Thought|Action):", rest, re.MULTILINE)
    value = rest[: stop.start()] if stop else rest
    return ParseResult(calls=(ToolCall(name, _react_arguments(value), _clip(line)),))


PARSERS: dict[str, Callable[[str], ParseResult]] = {
    "hermes": parse_hermes,
    "react": parse_react,
    "bracket": parse_bracket,
}


def parse_tool_calls(text: str, parser: str = "hermes") -> ParseResult:
    """Parse ``text`` with the named parser (``hermes``, ``react`` or ``bracket``)."""
    try:
        fn = PARSERS[parser]
    except KeyError:
        raise ToolError(f"unknown tool-call parser {parser!r}; choose one of {sorted(PARSERS)}") from None
    return fn(text)
