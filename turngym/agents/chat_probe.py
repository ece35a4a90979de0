"""How :meth:`~turngym.agents.chat.ChatFormat.probe` finds the pieces of a chat template.

The glue and suffix come from one probe rendering::

    [system?, user "<u>", assistant "<A>", user "<O>"]  + generation prompt

whose text is cut at the two marker contents: the glue is the piece between the end of ``<A>`` and
the start of ``<O>``, the suffix the piece after ``<O>``. Because the probe's assistant turn is
followed by a user turn, templates that rewrite earlier assistant turns (Qwen3 drops past
``<think>`` blocks) give the same glue they give any earlier turn. The tool-result pieces
(:class:`~turngym.agents.chat.ToolTurn`) come from two more renderings, with one and with two
``tool`` messages after the assistant turn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from turngym.agents.chat import ChatFormat, ToolTurn, _render, _template_ids, call_id, messages_for
from turngym.errors import ConfigError

_ASSISTANT_MARK = "\u2063turngym-assistant-probe\u2063"
_OBS_MARK = "\u2063turngym-observation-probe\u2063"
_SECOND_MARK = "\u2063turngym-second-observation-probe\u2063"
_QUOTE_PROBE = '"\n'
"""Appended to a tool-result probe: kept as is by a verbatim template, escaped by a JSON-quoting one."""
_TOOL_ROLE = re.compile(r"""(["'])tool\1""")


def probe(
    tokenizer: Any,
    system: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> ChatFormat:
    """Find the glue and suffix (and the tool-result pieces) of ``tokenizer``'s chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"tokenizer {type(tokenizer).__name__} has no chat_template; the agent loop needs one "
            "(set tokenizer.chat_template or use a chat model's directory)"
        )
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ConfigError(
            f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer (no backend_tokenizer); the "
            "agent loop needs one to encode observations as plain text (load it with use_fast=True)"
        )
    tools_t = tuple(tools) if tools else None
    kwargs = dict(template_kwargs or {})
    assistant = {"role": "assistant", "content": _ASSISTANT_MARK}
    rendered, fold = _render_probe(tokenizer, system, [assistant, {"role": "user", "content": _OBS_MARK}],
                                   tools_t, kwargs)  # fmt: skip
    head = messages_for(system, "turngym-user-probe", fold)
    pieces = _cut(rendered, (_ASSISTANT_MARK, _OBS_MARK))
    if pieces is None:
        raise ConfigError(
            "the chat template does not render message contents verbatim once each; the agent loop "
            "cannot find where an assistant turn ends and an observation begins"
        )
    return ChatFormat(
        tokenizer=tokenizer,
        system=system,
        tools=tools_t,
        glue=pieces[1],
        suffix=pieces[2],
        eos_ids=_end_of_turn_ids(tokenizer, pieces[1]),
        tool=_probe_tool_turn(tokenizer, [*head, assistant], tools_t, kwargs) if tools_t else None,
        template_kwargs=kwargs,
        system_in_user=fold,
    )


def _cut(text: str, marks: Sequence[str]) -> list[str] | None:
    """``text`` split at ``marks`` (each present exactly once, in order), or ``None``."""
    pieces, rest = [], text
    for mark in marks:
        if text.count(mark) != 1 or mark not in rest:
            return None
        before, rest = rest.split(mark)
        pieces.append(before)
    return [*pieces, rest]


def _render_probe(
    tokenizer: Any,
    system: str,
    tail: list[dict[str, str]],
    tools: tuple[Mapping[str, Any], ...] | None,
    kwargs: Mapping[str, Any],
) -> tuple[str, bool]:
    """The probe conversation rendered, and whether the system prompt had to join the user turn."""
    try:
        return _render(
            tokenizer, [*messages_for(system, "turngym-user-probe"), *tail], tools, True, kwargs
        ), False
    except Exception as exc:  # the template's raise_exception: without a system turn, or a clear error
        if not system:
            raise ConfigError(
                f"the chat template refused the agent loop's probe conversation: {exc}"
            ) from exc
        first_error = exc
    try:
        folded = messages_for(system, "turngym-user-probe", system_in_user=True)
        return _render(tokenizer, [*folded, *tail], tools, True, kwargs), True
    except Exception as exc:  # refused either way
        raise ConfigError(
            f"the chat template refused the agent loop's probe conversation: {first_error}"
        ) from exc


def _end_of_turn_ids(tokenizer: Any, glue: str) -> frozenset[int]:
    """Ids that end an assistant turn: the tokenizer's eos and the glue's first token when special."""
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    first = _template_ids(tokenizer, glue)[:1]
    specials = {t for t, added in tokenizer.added_tokens_decoder.items() if added.special}
    return frozenset(eos | (set(first) & specials))


def _probe_tool_turn(
    tokenizer: Any,
    head: list[dict[str, str]],
    tools: tuple[Mapping[str, Any], ...],
    kwargs: Mapping[str, Any],
) -> ToolTurn | None:
    """The tool-result pieces of a template that has a tool role, else ``None``.

    The probe results end in :data:`_QUOTE_PROBE`; a template that writes them as they are is
    ``verbatim``, one that writes them escaped inside a JSON string is ``json``.
    """
    template = tokenizer.chat_template
    sources = template.values() if isinstance(template, Mapping) else [template]
    if not any(_TOOL_ROLE.search(source) for source in sources):
        return None  # the template writes role names generically; the model never saw a tool role
    one = {"role": "tool", "tool_call_id": call_id(0), "content": _OBS_MARK + _QUOTE_PROBE}
    two = {"role": "tool", "tool_call_id": call_id(1), "content": _SECOND_MARK + _QUOTE_PROBE}
    try:
        single = _render(tokenizer, [*head, one], tools, True, kwargs)
        double = _render(tokenizer, [*head, one, two], tools, True, kwargs)
    except Exception:  # a template may refuse these messages (e.g. ids of its own format): use user turns
        return None
    for quoting in ("verbatim", "json"):
        turn = ToolTurn("", "", "", quoting)
        marks = [turn.content(mark + _QUOTE_PROBE) for mark in (_OBS_MARK, _SECOND_MARK)]
        if all(mark in double for mark in marks):
            first = _cut(single.replace(marks[0], _OBS_MARK), (_ASSISTANT_MARK, _OBS_MARK))
            both = _cut(
                double.replace(marks[0], _OBS_MARK).replace(marks[1], _SECOND_MARK),
                (_ASSISTANT_MARK, _OBS_MARK, _SECOND_MARK),
            )
            if first is None or both is None or both[1] != first[1]:
                return None
            return ToolTurn(glue=first[1], between=both[2], suffix=first[2], quoting=quoting)
    return None  # the results are rewritten some other way: user turns
