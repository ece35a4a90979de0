"""ALFWorld prompts in the style of verl-agent / GiGPO (research note §2.5).

Each step the agent sees the current observation, the admissible actions and, after the first step
(whose observation already states the task), the task and its last ``k`` steps as
``[Observation i: '...', Action i: '...']`` lines; the actions are each quoted and joined by
``"\\n "`` (``help`` left out); it reasons inside ``<think>...</think>`` and answers
with one action inside ``<action>...</action>``. :func:`parse_action` is the matching projection:
lowercase, take the text between the first ``<action>`` and ``</action>``; without both tags the
action is the last 30 characters and is marked invalid, as is a reply without ``<think>`` or with
CJK characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM_PROMPT = (
    "You are an expert agent operating in the ALFRED Embodied Environment. Each turn you are given "
    "your task, your recent history, your current observation and the admissible actions. Reason "
    "step by step inside <think> </think> tags, then give exactly one admissible action inside "
    "<action> </action> tags."
)
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Step:
    """One past step: the observation the agent saw and the action it took."""

    observation: str
    action: str


def step_prompt(
    task: str,
    observation: str,
    admissible: Sequence[str],
    history: Sequence[Step] = (),
    *,
    history_length: int = 2,
) -> str:
    """The user message for one step: task, last ``history_length`` steps, observation, actions."""
    actions = "\n ".join(f"'{a}'" for a in admissible if a != "help")
    recent = list(history)[-history_length:] if history_length > 0 else []
    if not recent:
        return (  # the first observation already ends with the task sentence
            f"Your current observation is: {observation}\n"
            f"Your admissible actions of the current situation are: [{actions}].\n\n"
            "Now it's your turn to take an action. You should first reason step-by-step about the current "
            "situation, enclosed within <think> </think> tags. Once you've finished your reasoning, choose "
            "one admissible action and present it within <action> </action> tags."
        )
    first = len(history) - len(recent) + 1
    lines = "\n".join(
        f"[Observation {first + i}: '{s.observation}', Action {first + i}: '{s.action}']"
        for i, s in enumerate(recent)
    )
    return (
        f"Your task is to: {task}\n"
        f"Prior to this step, you have already taken {len(history)} step(s). Below are the most recent "
        f"{len(recent)} observations and the corresponding actions you took: {lines}\n"
        f"You are now at step {len(history) + 1} and your current observation is: {observation}\n"
        f"Your admissible actions of the current situation are: [{actions}].\n\n"
        "Now it's your turn to take an action. You should first reason step-by-step about the current "
        "situation, enclosed within <think> </think> tags. Once you've finished your reasoning, choose "
        "one admissible action and present it within <action> </action> tags."
    )


def parse_action(reply: str) -> tuple[str, bool]:
    """``(action, valid)`` from a model reply (the verl-agent projection)."""
    text = reply.lower()
    start, end = text.find("<action>"), text.find("</action>")
    if start < 0 or end < start:
        return text[-30:], False
    action = text[start + len("<action>") : end].strip()
    valid = "<think>" in text and "</think>" in text and not _CJK.search(reply)
    return action, valid


def task_of(intro: str) -> str:
    """The task sentence of an ALFWorld intro observation (``Your task is to: ...``), without period."""
    marker = "Your task is to: "
    at = intro.rfind(marker)
    return intro[at + len(marker) :].rstrip(".").strip() if at >= 0 else ""
