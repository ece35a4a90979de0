"""Chat formatting for the agent loop: the token pieces of a tokenizer's chat template.

The loop renders the chat template exactly once per episode (the first prompt) and afterwards only
*appends* token ids, so the history is never re-tokenized and the trained tokens are the sampled
ones. What it appends after each action comes from one probe rendering::

    [system?, user "<u>", assistant "<A>", user "<O>"]  + generation prompt

whose text is cut at the two marker contents. The piece between the end of ``<A>`` and the start
of ``<O>`` is the *glue* that closes an assistant turn and opens a user turn (ChatML:
``<|im_end|>\\n<|im_start|>user\\n``); the piece after ``<O>`` closes the observation and opens
the next assistant turn (``<|im_end|>\\n<|im_start|>assistant\\n``). For an observation ``o`` the
loop appends ``encode(glue + o + suffix)``, dropping the glue's first token when it is the
end-of-turn token the policy already sampled. Because the probe's assistant turn is followed by a
user turn, templates that rewrite earlier assistant turns (Qwen3 drops past ``<think>`` blocks)
give the same glue they give any earlier turn.

Reasoning is removed from the action the env sees (``<think>...</think>``), never from the tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turngym.errors import ConfigError

_ASSISTANT_MARK = "\u2063turngym-assistant-probe\u2063"
_OBS_MARK = "\u2063turngym-observation-probe\u2063"
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


def action_text(text: str) -> str:
    """The action an env receives for a policy's text: reasoning blocks removed, whitespace trimmed."""
    return _THINK.sub("", text).strip()


def env_tools(env: Any) -> list[dict[str, Any]] | None:
    """The JSON schemas of the tools an env exposes through a ``toolbox`` (or ``None``)."""
    toolbox = getattr(env, "toolbox", None)
    return list(toolbox.schemas()) if toolbox is not None else None


def messages_for(system: str, observation: str) -> list[dict[str, str]]:
    """The first turn's messages: the env's system prompt (when it has one) and its observation."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": observation}]


@dataclass(frozen=True)
class ChatFormat:
    """The token pieces of one tokenizer's chat template for one system prompt and tool list."""

    tokenizer: Any
    system: str
    tools: tuple[Mapping[str, Any], ...] | None
    glue: str
    """Text between an assistant turn's content and the next observation's content."""
    suffix: str
    """Text after an observation's content up to where the policy starts generating."""
    eos_ids: frozenset[int]

    @classmethod
    def probe(
        cls, tokenizer: Any, system: str, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> ChatFormat:
        """Find the glue and suffix of ``tokenizer``'s chat template."""
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"tokenizer {type(tokenizer).__name__} has no chat_template; the agent loop needs one "
                "(set tokenizer.chat_template or use a chat model's directory)"
            )
        tools_t = tuple(tools) if tools else None
        messages = [
            *messages_for(system, "turngym-user-probe"),
            {"role": "assistant", "content": _ASSISTANT_MARK},
            {"role": "user", "content": _OBS_MARK},
        ]
        text = _render(tokenizer, messages, tools_t, generation_prompt=True)
        a, o = text.find(_ASSISTANT_MARK), text.find(_OBS_MARK)
        if a < 0 or o < a or text.count(_ASSISTANT_MARK) != 1 or text.count(_OBS_MARK) != 1:
            raise ConfigError(
                "the chat template does not render message contents verbatim once each; the agent loop "
                "cannot find where an assistant turn ends and an observation begins"
            )
        eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        for extra in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
            tid = tokenizer.convert_tokens_to_ids(extra)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None:
                eos.add(tid)
        return cls(
            tokenizer=tokenizer,
            system=system,
            tools=tools_t,
            glue=text[a + len(_ASSISTANT_MARK) : o],
            suffix=text[o + len(_OBS_MARK) :],
            eos_ids=frozenset(eos),
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def first_prompt(self, observation: str) -> list[int]:
        """The first prompt of an episode: system prompt, tools and the first observation."""
        return self.encode(_render(self.tokenizer, messages_for(self.system, observation), self.tools, True))

    def continuation(self, observation: str, action_ids: Sequence[int]) -> list[int]:
        """Tokens appended after a sampled action to present the next observation."""
        ids = self.encode(self.glue + observation + self.suffix)
        if action_ids and action_ids[-1] in self.eos_ids and ids and ids[0] == action_ids[-1]:
            return ids[1:]  # the policy sampled the end-of-turn token itself
        return ids

    def window_prompt(self, first_observation: str, history: Sequence[tuple[str, str]]) -> list[int]:
        """A fresh prompt: the task, then ``(action, observation)`` pairs as chat turns."""
        messages = messages_for(self.system, first_observation)
        for action, observation in history:
            messages += [{"role": "assistant", "content": action}, {"role": "user", "content": observation}]
        return self.encode(_render(self.tokenizer, messages, self.tools, True))


def _render(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    tools: tuple[Mapping[str, Any], ...] | None,
    generation_prompt: bool,
) -> str:
    kwargs: dict[str, Any] = {"tools": list(tools)} if tools else {}
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=generation_prompt, **kwargs
    )
