"""``turngym template-check``: where the agent loop's sequence and the chat template's rendering part.

The agent loop renders the chat template once and then only appends tokens (:mod:`turngym.agents.chat`),
so it trains on exactly what was sampled. Many templates are not append-only: rendered again over the
whole conversation, they drop reasoning of past turns (Qwen3, DeepSeek-R1), re-render tool calls as
JSON (Llama 3.x), move the system prompt and tool list to the last user turn (Mistral Nemo), trim
contents (Gemma, Llama) or stamp today's date (Llama 3.2). A model served by an OpenAI-compatible
server sees that re-rendered text at evaluation, while training saw the loop's sequence.

:func:`check_template` plays one scripted Calculator episode through the real loop (a reply with
reasoning and a tool call, a reply without a call, the answer), renders the same conversation with
the template the way a server renders the messages of ``turngym eval --agent openai`` (tool calls
parsed into ``tool_calls``, their results as ``tool`` messages, when the template has a tool role),
and lists every place where the two token sequences differ (a diff over token ids, shown as text),
with the turn it falls in.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turngym.agents.chat import ChatFormat, action_text, call_id, env_tools, messages_for, tool_answers
from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.scripted import ScriptedPolicy
from turngym.envs import make
from turngym.tools.parsers import parse_hermes
from turngym.trajectory import Trajectory

ENV_ID = "turngym/Calculator-v0"
TASK_ID = 3


@dataclass(frozen=True)
class Difference:
    """One place where the loop's text and the template's rendering differ."""

    where: str
    """The part of the loop's sequence it falls in, e.g. ``turn 1 prompt`` or ``turn 0 action``."""
    loop: str
    """The loop's text there (empty: the template adds text)."""
    template: str
    """The template's text there (empty: the template drops the loop's text)."""


@dataclass(frozen=True)
class TemplateReport:
    """What :func:`check_template` found for one tokenizer."""

    fmt: ChatFormat
    loop_text: str
    """The loop's token sequence of the episode, decoded."""
    template_text: str
    """The template's rendering of the same conversation."""
    token_identical: bool
    """The loop's ids equal the template's rendering encoded whole."""
    differences: list[Difference] = field(default_factory=list)


def scripted_replies(expression: str, answer: int) -> list[str]:
    """The check's three replies: reasoning and a tool call, a reply without a call, the answer."""
    call = json.dumps({"name": "calculator", "arguments": {"expression": expression}})
    return [
        f"<think>\nI should compute {expression}.\n</think>\n\n<tool_call>\n{call}\n</tool_call>",
        "<think>\nThe tool answered.\n</think>\n\nLet me state it.",
        f"<answer>{answer}</answer>",
    ]


def check_template(tokenizer: Any, template_kwargs: Mapping[str, Any] | None = None) -> TemplateReport:
    """Play the scripted episode with ``tokenizer`` and compare the loop's text with the template's."""
    kwargs = dict(template_kwargs or {})
    env = make(ENV_ID)
    env.reset(seed=0, options={"task_id": TASK_ID})
    replies = scripted_replies(env.problem.expression, env.problem.answer)
    fmt = ChatFormat.probe(tokenizer, env.system_prompt, env_tools(env), kwargs)
    env.close()
    config = LoopConfig(
        sampling=SamplingParams(max_new_tokens=512), max_context_tokens=1 << 20, chat_template_kwargs=kwargs
    )
    policy = ScriptedPolicy(_ending_turns_like_the_template(fmt), replies)
    (traj,) = run_batch(lambda: make(ENV_ID), policy, tokenizer, [(TASK_ID, 0)], config)
    loop_text = tokenizer.decode(list(traj.token_ids))
    messages = conversation(fmt, traj)
    template_text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=False, **_with_tools(fmt, kwargs)
    )
    template_ids = tokenizer.encode(template_text, add_special_tokens=False)
    return TemplateReport(
        fmt=fmt,
        loop_text=loop_text,
        template_text=template_text,
        token_identical=list(traj.token_ids) == list(template_ids),
        differences=differences(tokenizer, list(traj.token_ids), template_ids, _spans(traj)),
    )


def conversation(fmt: ChatFormat, traj: Trajectory) -> list[dict[str, Any]]:
    """The episode's messages as a server would hand them to the template: sampled texts (special
    tokens removed) as assistant contents; when the template has a tool role, parsed tool calls as
    ``tool_calls`` and their results as ``tool`` messages, else results as user turns."""
    tokenizer = fmt.tokenizer
    messages: list[dict[str, Any]] = messages_for(fmt.system, traj.turns[0].observation, fmt.system_in_user)
    for k, turn in enumerate(traj.turns):
        text = tokenizer.decode(list(turn.action_ids), skip_special_tokens=True)
        calls = parse_hermes(action_text(text)).calls if fmt.tool is not None and fmt.tool_calls(text) else ()
        if calls:
            wire = [
                {"id": call_id(i), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for i, c in enumerate(calls)
            ]
            messages.append(
                {"role": "assistant", "content": text.split("<tool_call>", 1)[0], "tool_calls": wire}
            )
        else:
            messages.append({"role": "assistant", "content": text})
        if k + 1 < len(traj.turns):
            observation = traj.turns[k + 1].observation
            if calls:
                messages += [
                    {"role": "tool", "tool_call_id": call_id(i), "content": answer}
                    for i, answer in enumerate(tool_answers(observation, len(calls)))
                ]
            else:
                messages.append({"role": "user", "content": observation})
    return messages


def differences(
    tokenizer: Any, loop_ids: Sequence[int], template_ids: Sequence[int], spans: Sequence[tuple[int, str]]
) -> list[Difference]:
    """Every non-equal block of a diff of the two id sequences, decoded, labelled with the loop span
    it starts in; ``spans`` are ``(start index, label)`` of the parts of ``loop_ids``, in order."""
    matcher = difflib.SequenceMatcher(None, list(loop_ids), list(template_ids), autojunk=False)
    out = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag != "equal":
            first, last = (_label(spans, i) for i in (a0, max(a1 - 1, a0)))
            where = first if first == last else f"{first} .. {last}"
            if a0 == len(loop_ids):
                where = "after the last turn"
            loop, template = tokenizer.decode(loop_ids[a0:a1]), tokenizer.decode(template_ids[b0:b1])
            out.append(Difference(where, loop, template))
    return out


def report_lines(report: TemplateReport, limit: int = 60) -> list[str]:
    """The report as text lines: the probed pieces, then one table row per difference."""
    fmt = report.fmt
    eos = ", ".join(sorted(fmt.tokenizer.convert_ids_to_tokens(sorted(fmt.eos_ids))))
    if fmt.tool is None:
        tools = "user turns (the template has no tool role it renders verbatim)"
    else:
        glue, suffix = _show(fmt.tool.glue, limit), _show(fmt.tool.suffix, limit)
        tools = f"tool role, {fmt.tool.quoting}: {glue} ... {suffix}"
    lines = [
        f"end of turn:   {eos}",
        f"glue:          {_show(fmt.glue, limit)}",
        f"suffix:        {_show(fmt.suffix, limit)}",
        f"tool results:  {tools}",
        "system prompt: "
        + (
            "folded into the first user turn (the template refuses a system message)"
            if fmt.system_in_user
            else "own turn"
        ),
        f"kwargs:        {json.dumps(dict(fmt.template_kwargs)) if fmt.template_kwargs else '(none)'}",
        "",
        f"scripted {ENV_ID} episode: the loop's sequence vs the template's rendering of it",
    ]
    if not report.differences:
        lines.append(
            "identical text" + (", identical tokens" if report.token_identical else ", different tokens")
        )
        return lines
    same = "yes" if report.token_identical else "no"
    lines.append(f"{len(report.differences)} differences (token-identical: {same})")
    width = max(len(d.where) for d in report.differences)
    lines.append(f"{'#':>3}  {'where':<{width}}  {'loop':<{limit}}  template")
    for k, diff in enumerate(report.differences, 1):
        loop, template = _show(diff.loop, limit), _show(diff.template, limit)
        lines.append(f"{k:>3}  {diff.where:<{width}}  {loop:<{limit}}  {template}")
    return lines


def _label(spans: Sequence[tuple[int, str]], index: int) -> str:
    return next((label for start, label in reversed(spans) if start <= index), "start")


def _ending_turns_like_the_template(fmt: ChatFormat) -> Any:
    """The tokenizer, or a copy whose eos is the token the template ends assistant turns with (the
    glue's first token: Gemma's ``<end_of_turn>``, Phi-3.5's ``<|end|>``), which the model samples."""
    tokenizer = fmt.tokenizer
    first = tokenizer.encode(fmt.glue, add_special_tokens=False)[:1]
    if not first or first[0] not in fmt.eos_ids or first[0] == tokenizer.eos_token_id:
        return tokenizer
    out = copy.deepcopy(tokenizer)
    out.eos_token = tokenizer.convert_ids_to_tokens(first[0])
    return out


def _spans(traj: Trajectory) -> list[tuple[int, str]]:
    """``(token index, label)`` where each turn's prompt and action start in the loop's sequence."""
    out, start = [], 0
    for t, turn in enumerate(traj.turns):
        for label, part in ((f"turn {t} prompt", turn.prompt_ids), (f"turn {t} action", turn.action_ids)):
            out.append((start, label))
            start += len(part)
    return out


def _with_tools(fmt: ChatFormat, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {**kwargs, "tools": list(fmt.tools)} if fmt.tools else dict(kwargs)


def _show(text: str, limit: int) -> str:
    """``text`` as a quoted literal (escapes visible), shortened in the middle to ``limit``."""
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[: limit // 2 - 2] + " … " + shown[-(limit // 2 - 2) :]
