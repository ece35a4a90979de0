"""Tool results look the same in training (token loop) and evaluation (chat loop).

The rule: an observation that answers tool calls the policy made is a ``tool`` message (one per
call; calls after the first, which the env did not run, are answered that they did not run) when the
template has a tool role, else a ``user`` message; every other observation is a ``user`` message. The
tests play the same Calculator episode through both loops and compare the token loop's decoded
prompts with the chat loop's messages rendered by the same chat template, as a server renders them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from turngym.agents.chat import NOT_RUN, ChatFormat, ToolTurn
from turngym.agents.chat_loop import run_chat_batch
from turngym.agents.loop import run_batch
from turngym.agents.openai import render_tool_calls
from turngym.agents.policy import ChatReply, LoopConfig, SamplingParams
from turngym.agents.scripted import ScriptedPolicy
from turngym.envs import make

CALC = "turngym/Calculator-v0"

# Qwen2.5's chat layout, written for these tests: tool schemas in the system turn, an assistant's
# tool calls re-rendered as <tool_call> blocks, tool results as one user turn of <tool_response>s.
QWEN25_STYLE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nFunctions you may call:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    '{{- \'\\n</tools>\\n\\nCall one as <tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>'
    "<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for call in message.tool_calls %}"
    "{%- if call.function is defined %}{%- set call = call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' + call.name + \'", "arguments": \' + (call.arguments | tojson) }}'
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or loop.nextitem.role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _calls(*expressions: str) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"id": f"c{i}", "name": "calculator", "arguments": {"expression": e}}
        for i, e in enumerate(expressions)
    )


def _as_qwen_writes(calls: Sequence[Mapping[str, Any]]) -> str:
    """Tool calls as Qwen2.5 samples them (the same text its template renders them as)."""
    return "\n".join(
        "<tool_call>\n" + json.dumps({"name": c["name"], "arguments": c["arguments"]}) + "\n</tool_call>"
        for c in calls
    )


@dataclass
class ScriptedChat:
    """A chat policy replaying ``replies`` and keeping every conversation it was sent."""

    replies: list[ChatReply]
    seen: list[list[dict[str, Any]]] = field(default_factory=list)
    tools: list[Any] = field(default_factory=list)
    name: str = "scripted-chat"

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        params: SamplingParams,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[ChatReply]:
        (conversation,) = conversations
        self.seen.append(copy.deepcopy([dict(m) for m in conversation]))
        self.tools.append(tools)
        return [self.replies[len(self.seen) - 1]]


def _as_served(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as an OpenAI-compatible server hands them to the template (arguments decoded)."""
    out = []
    for message in messages:
        message = copy.deepcopy(dict(message))
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        out.append(message)
    return out


def _episode(expression: str, answer: int, native: bool) -> tuple[list[str], list[ChatReply]]:
    """One Calculator episode as token-loop texts and chat-loop replies: a call, a turn without a
    call, two calls in one turn (the env runs the first), the answer."""
    one, two = _calls(expression), _calls(expression, "1 + 1")
    texts = [_as_qwen_writes(one), "Let me think.", _as_qwen_writes(two), f"<answer>{answer}</answer>"]

    def reply(text: str, calls: tuple[dict[str, Any], ...]) -> ChatReply:
        if not native or not calls:  # an endpoint without a tool parser returns calls as text
            return ChatReply(text, "stop")
        return ChatReply(render_tool_calls(calls), "stop", tool_calls=calls)

    replies = [reply(texts[0], one), reply(texts[1], ()), reply(texts[2], two), reply(texts[3], ())]
    return texts, replies


def _both_loops(tokenizer: Any, context: str, native: bool) -> tuple[list[str], list[str]]:
    """The prompts of the token loop (decoded) and of the chat loop (rendered), turn by turn."""
    env = make(CALC)
    env.reset(seed=0, options={"task_id": 3})
    problem, tools = env.problem, env.toolbox.schemas()
    env.close()
    texts, replies = _episode(problem.expression, problem.answer, native)
    prompts: list[list[int]] = []

    def reply(prompt: Sequence[int]) -> str:
        prompts.append(list(prompt))
        return texts[len(prompts) - 1]

    config = LoopConfig(context=context, sampling=SamplingParams(max_new_tokens=200), env_id=CALC)
    (traj,) = run_batch(lambda: make(CALC), ScriptedPolicy(tokenizer, reply), tokenizer, [(3, 0)], config)
    chat = ScriptedChat(replies)
    (chat_traj,) = run_chat_batch(lambda: make(CALC), chat, [(3, 0)], config)
    assert traj.won and chat_traj.won and len(traj.turns) == len(chat_traj.turns) == 4
    assert [t.observation for t in traj.turns] == [t.observation for t in chat_traj.turns]
    assert chat.tools == [tools] * 4
    decoded = [tokenizer.decode(p) for p in prompts]
    rendered = [
        tokenizer.apply_chat_template(_as_served(m), tools=tools, tokenize=False, add_generation_prompt=True)
        for m in chat.seen
    ]
    return decoded, rendered


@pytest.mark.parametrize("context", ["full", "window:1"])
def test_both_loops_render_tool_results_in_the_templates_tool_role(tiny_tokenizer: Any, context: str) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = QWEN25_STYLE
    decoded, rendered = _both_loops(tokenizer, context, native=True)
    assert decoded == rendered
    last = decoded[-1]
    assert "<|im_start|>user\n<tool_response>\nResult: 800\n</tool_response><|im_end|>\n" in decoded[1]
    assert (
        f"<tool_response>\nResult: 800\n</tool_response>\n<tool_response>\n{NOT_RUN}\n</tool_response>"
        in last
    )
    assert "<|im_start|>user\nInvalid action: no tool call or answer found." in decoded[2]  # no call: user
    assert last.count("<tool_response>") == (2 if context == "window:1" else 3)


def test_a_template_without_a_tool_role_gets_tool_results_as_user_turns(tiny_tokenizer: Any) -> None:
    # The tiny template writes any role name it is given but handles no tool role: tool results are
    # user turns, in the token loop and, when the endpoint returns calls as text, in the chat loop.
    env = make(CALC)
    assert ChatFormat.probe(tiny_tokenizer, env.system_prompt, env.toolbox.schemas()).tool is None
    env.close()
    decoded, rendered = _both_loops(tiny_tokenizer, "full", native=False)
    assert decoded == rendered
    assert decoded[-1].count("<|im_start|>user\nResult: 800<|im_end|>") == 2
    assert "<|im_start|>tool" not in decoded[-1]


def test_probe_finds_the_tool_pieces_of_a_qwen25_style_template(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = QWEN25_STYLE
    schemas = make(CALC).toolbox.schemas()
    fmt = ChatFormat.probe(tokenizer, "S", schemas)
    assert fmt.tool == ToolTurn(
        glue="<|im_end|>\n<|im_start|>user\n<tool_response>\n",
        between="\n</tool_response>\n<tool_response>\n",
        suffix="\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    )
    assert ChatFormat.probe(tokenizer, "S").tool is None  # no tools offered: no tool results
    eos = tokenizer.eos_token_id
    call = _as_qwen_writes(_calls("2 + 3"))
    ids = [*tokenizer.encode(call, add_special_tokens=False), eos]
    assert fmt.tool_calls(call) == 1
    assert tokenizer.decode(fmt.continuation("Result: 5", ids)) == (
        "\n<|im_start|>user\n<tool_response>\nResult: 5\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    plain = [*tokenizer.encode("no call here", add_special_tokens=False), eos]
    assert tokenizer.decode(fmt.continuation("Say more.", plain)).startswith("\n<|im_start|>user\nSay more.")
    assert fmt.tool_calls("<tool_call>not json</tool_call>") == 0  # the env answers a broken call as invalid


def test_a_template_that_refuses_tool_messages_falls_back_to_user_turns(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{%- for m in messages %}"
        "{%- if m.role == 'tool' and not m.tool_call_id.startswith('toolu_') %}"
        "{{- raise_exception('tool call ids must start with toolu_') }}{%- endif %}"
        "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    fmt = ChatFormat.probe(tokenizer, "S", make(CALC).toolbox.schemas())
    assert fmt.tool is None
    call = _as_qwen_writes(_calls("2 + 3"))
    ids = tokenizer.encode(call, add_special_tokens=False)
    assert tokenizer.decode(fmt.continuation("Result: 5", ids)) == (
        "<|im_end|>\n<|im_start|>user\nResult: 5<|im_end|>\n<|im_start|>assistant\n"
    )
