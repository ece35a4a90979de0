"""The message-level agent loop for :class:`~turngym.agents.policy.ChatPolicy` backends (``openai``).

Same lock-step batching, stop reasons and context modes as :mod:`turngym.agents.loop`, but the
conversation is kept as chat messages, since a remote endpoint takes messages and returns text:
the trajectories carry no token ids (evaluation only). Tool results follow the rule of
:mod:`turngym.agents.chat`, which the token loop follows too: a reply with native tool calls is
recorded the way the OpenAI API expects it back, an assistant message with ``tool_calls``, then one
``tool`` message per call (:func:`~turngym.agents.chat.tool_answers`: the env's observation answers
the first call; envs run one call per turn, so any further call is answered that it did not run); the
server's chat template renders them (Qwen2.5: a user turn of ``<tool_response>`` blocks). Any other
observation is a ``user`` message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turngym.agents.chat import action_text, env_tools, messages_for, tool_answers
from turngym.agents.loop import EnvFactory, Job, episode_trajectory, failure_stop
from turngym.agents.policy import ChatPolicy, ChatReply, LoopConfig
from turngym.envs.core import TextEnv
from turngym.trajectory import StopReason, Trajectory, Turn


@dataclass
class _Conversation:
    env: TextEnv
    job: Job
    head: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[list[dict[str, Any]]] = field(default_factory=list)
    observation: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    tokens: int = 0
    stop: StopReason | None = None
    error: str = ""

    def messages(self, window: int | None) -> list[dict[str, Any]]:
        recent = self.exchanges if window is None else self.exchanges[-window:]
        return self.head + [m for exchange in recent for m in exchange]


def run_chat_batch(
    env_factory: EnvFactory, policy: ChatPolicy, jobs: Sequence[Job], config: LoopConfig
) -> list[Trajectory]:
    """Episodes of ``jobs`` with a chat policy, in lock-step batches of ``config.batch_size``."""
    out: list[Trajectory] = []
    for start in range(0, len(jobs), config.batch_size):
        out += _lockstep(env_factory, policy, jobs[start : start + config.batch_size], config)
    return out


def _lockstep(
    env_factory: EnvFactory, policy: ChatPolicy, jobs: Sequence[Job], config: LoopConfig
) -> list[Trajectory]:
    convs = [_start(env_factory, job) for job in jobs]
    tools = env_tools(convs[0].env) if convs else None
    while active := [c for c in convs if c.stop is None]:
        try:
            replies = policy.chat([c.messages(config.window) for c in active], config.sampling, tools)
        except Exception as exc:  # the whole call failed: every conversation in it stops, none raises
            for conv in active:
                conv.stop, conv.error = failure_stop("policy", exc, StopReason.POLICY_ERROR)
            break
        for conv, reply in zip(active, replies, strict=True):
            _advance(conv, reply)
    return [_finish(conv, policy, config) for conv in convs]


def _start(env_factory: EnvFactory, job: Job) -> _Conversation:
    env = env_factory()
    conv = _Conversation(env=env, job=job)
    try:
        conv.observation, conv.info = env.reset(seed=job[1], options={"task_id": job[0]})
    except Exception as exc:  # a task that cannot start is recorded, not raised
        conv.stop, conv.error = failure_stop("reset", exc, StopReason.ENV_ERROR)
        return conv
    conv.head = messages_for(env.system_prompt, conv.observation)
    return conv


def _advance(conv: _Conversation, reply: ChatReply) -> None:
    anchor, observation = conv.info.get("anchor"), conv.observation
    conv.tokens += reply.completion_tokens
    turn_info: dict[str, Any] = {
        "finish_reason": reply.finish_reason,
        "completion_tokens": reply.completion_tokens,
    }
    if reply.finish_reason == "error":
        conv.turns.append(Turn(observation, "", 0.0, anchor, turn_info))
        conv.stop, conv.error = StopReason.POLICY_ERROR, f"policy: {reply.error}"
        return
    action = action_text(reply.text)
    try:
        obs, reward, terminated, truncated, info = conv.env.step(action)
    except Exception as exc:  # the env failed on this action: record it, keep the batch going
        conv.turns.append(Turn(observation, action, 0.0, anchor, turn_info))
        conv.stop, conv.error = failure_stop("env", exc, StopReason.ENV_ERROR)
        return
    turn_info["invalid_action"] = bool(info["invalid_action"])
    parsed_before = conv.info.get("metrics", {}).get("parse_failures", 0.0)
    turn_info["parse_error"] = info.get("metrics", {}).get("parse_failures", 0.0) > parsed_before
    conv.turns.append(Turn(observation, action, float(reward), anchor, turn_info))
    conv.observation, conv.info = obs, info
    conv.exchanges.append(_exchange(reply, obs))
    if terminated:
        conv.stop = StopReason.WON if info["won"] else StopReason.LOST
    elif truncated:
        conv.stop = StopReason.TRUNCATED


def _exchange(reply: ChatReply, observation: str) -> list[dict[str, Any]]:
    """The messages one turn adds: the assistant's reply and the env's answer."""
    if not reply.tool_calls:
        return [{"role": "assistant", "content": reply.text}, {"role": "user", "content": observation}]
    calls = [_wire_call(c, i) for i, c in enumerate(reply.tool_calls)]
    content = reply.text.split("<tool_call>", 1)[0]
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": content or None, "tool_calls": calls}]
    for call, answer in zip(calls, tool_answers(observation, len(calls)), strict=True):
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": answer})
    return messages


def _wire_call(call: Mapping[str, Any], index: int) -> dict[str, Any]:
    return {
        "id": call.get("id") or f"call_{index}",
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
    }


def _finish(conv: _Conversation, policy: ChatPolicy, config: LoopConfig) -> Trajectory:
    metadata: dict[str, Any] = {
        "agent": policy.name,
        "metrics": dict(conv.info.get("metrics", {})),
        "completion_tokens": conv.tokens,
    }
    if conv.error:
        metadata["error"] = conv.error
    conv.env.close()
    return episode_trajectory(config, conv.job, conv.turns, conv.stop, metadata)
