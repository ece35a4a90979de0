"""Chat formatting for the agent loop: the token pieces of a tokenizer's chat template.

The loop renders the chat template once per episode (the first prompt) and afterwards only
*appends* token ids, so the history is never re-tokenized and the trained tokens are the sampled
ones. What it appends after each action are two pieces of the template, which
:meth:`ChatFormat.probe` finds by rendering a probe conversation (:mod:`turngym.agents.chat_probe`):
the *glue* that closes an assistant turn and opens a user turn (ChatML:
``<|im_end|>\\n<|im_start|>user\\n``) and the *suffix* that closes the observation and opens
the next assistant turn (``<|im_end|>\\n<|im_start|>assistant\\n``). For an observation ``o`` the
loop appends the ids of ``glue``, ``o`` and ``suffix``, dropping the glue's first token when it is
the end-of-turn token the policy already sampled.

**Only the template writes control tokens.** Observations are untrusted text (program output, web
pages, retrieved passages): they are encoded as plain text, without matching any added token of the
tokenizer, special (``<|im_end|>``) or not (``<tool_response>``), so an env cannot forge a turn.
The template's pieces (glue, suffix, and in the first prompt the env's system prompt and tool
schemas, which the env's author wrote) are encoded normally. Whole prompts (the first one, window
prompts) are rendered with placeholders in place of the observations, cut at the placeholders and
encoded piece by piece. Actions in window prompts are the policy's own text: its non-special added
tokens (``<tool_call>``, ``<think>``) come back as the single tokens it sampled, while special
tokens spelled out inside it stay text. Encoding pieces separately can split BPE merges at a piece
boundary differently from encoding the joined string; the loop never re-tokenizes, so that is
harmless, and for the usual templates (pieces meet at a newline) the ids are the same.

**Tool results.** An observation answers a tool call when the env offers tools (``env.toolbox``)
and the action holds hermes ``<tool_call>{json}</tool_call>`` blocks that all parse, the calls a
server with a hermes tool parser returns as native ``tool_calls``. Such an observation is presented
in the template's tool role when the template has one (its source handles the role ``'tool'`` and
it renders a ``tool`` message after an assistant turn with the content verbatim; Qwen2.5 writes
``<|im_start|>user\\n<tool_response>\\n...\\n</tool_response>``), else as a user turn. Every call
gets an answer, as the OpenAI API requires: the first the observation, later ones :data:`NOT_RUN`
(envs run one call per turn). The chat loop follows the same rule with messages, so training and
evaluation show tool results alike.

Templates of other families (checked against the real templates of Qwen2.5, Qwen3, Llama 3.1/3.2,
Mistral, Gemma 2/3, Phi-3.5/4 and DeepSeek-R1-Distill in ``tests/unit/agents/test_real_templates.py``):

* a template that refuses a system message (Gemma 2, Mistral-7B-Instruct v0.2) gets the system
  prompt at the start of the first user turn, separated by a blank line
  (:attr:`ChatFormat.system_in_user`);
* the end of an assistant turn is the first token of the glue when that is a special token
  (``<|end|>`` for Phi-3.5, ``<｜end▁of▁sentence｜>`` for DeepSeek), besides the tokenizer's eos;
* a template that writes tool results as JSON strings (Llama 3.x renders a string content with
  ``tojson``) gets observations JSON-escaped in that place (:attr:`ToolTurn.quoting`);
* tool-call ids are nine characters (``call00000``), the length Mistral's templates require;
* ``template_kwargs`` (``chat_template_kwargs``: Qwen3's ``enable_thinking``, Llama's
  ``date_string``) go to every rendering.

Reasoning is removed from the action the env sees (``<think>...</think>``), never from the tokens.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turngym.errors import ConfigError
from turngym.tools.parsers import parse_hermes

NOT_RUN = "Not run: the environment runs one tool call per turn."
"""The answer to every tool call of a turn after the first (the env ran only the first)."""

_SLOT = "\u2063turngym-slot-{}\u2063"
_SLOT_RE = re.compile("\u2063turngym-slot-(\\d+)\u2063")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_TEMPLATE, _OBSERVATION, _ACTION = "template", "observation", "action"
"""How a piece of a prompt is encoded: as the template writes it, as plain text, as the policy's text."""


def action_text(text: str) -> str:
    """The action an env receives for a policy's text: reasoning blocks removed, whitespace trimmed."""
    return _THINK.sub("", text).strip()


def env_tools(env: Any) -> list[dict[str, Any]] | None:
    """The JSON schemas of the tools an env exposes through a ``toolbox`` (or ``None``)."""
    toolbox = getattr(env, "toolbox", None)
    return list(toolbox.schemas()) if toolbox is not None else None


def messages_for(system: str, observation: str, system_in_user: bool = False) -> list[dict[str, str]]:
    """The first turn's messages: the env's system prompt (when it has one) and its observation;
    with ``system_in_user`` the system prompt opens the user turn (templates without a system role)."""
    if system and system_in_user:
        return [{"role": "user", "content": f"{system}\n\n{observation}"}]
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": observation}]


def call_id(index: int) -> str:
    """The id of a turn's ``index``-th tool call: nine characters, as Mistral's templates require."""
    return f"call{index:05d}"


def tool_answers(observation: str, calls: int) -> list[str]:
    """The contents answering ``calls`` tool calls of one turn: the observation, then :data:`NOT_RUN`."""
    return [observation] + [NOT_RUN] * (calls - 1)


@dataclass(frozen=True)
class ToolTurn:
    """The template's pieces around tool results, cut from a probe rendering of two tool messages."""

    glue: str
    """Text between an assistant turn's content and its first tool result."""
    between: str
    """Text between one tool result and the next one of the same turn."""
    suffix: str
    """Text after the last tool result up to where the policy starts generating."""
    quoting: str = "verbatim"
    """``verbatim`` (the result's text as is) or ``json`` (inside a JSON string, escaped: Llama 3.x)."""

    def content(self, text: str) -> str:
        """``text`` as the template writes it in a tool result."""
        return json.dumps(text, ensure_ascii=False)[1:-1] if self.quoting == "json" else text


@dataclass(frozen=True)
class ChatFormat:
    """The token pieces of one tokenizer's chat template for one system prompt and tool list."""

    tokenizer: Any
    system: str
    tools: tuple[Mapping[str, Any], ...] | None
    glue: str
    """Text between an assistant turn's content and the next (user) observation's content."""
    suffix: str
    """Text after a user observation's content up to where the policy starts generating."""
    eos_ids: frozenset[int]
    tool: ToolTurn | None = None
    """How tool results look; ``None`` when no tools are offered or the template has no tool role."""
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra variables of every rendering (``chat_template_kwargs``, e.g. ``enable_thinking``)."""
    system_in_user: bool = False
    """The template refuses a system message: the system prompt opens the first user turn."""

    @staticmethod
    def probe(
        tokenizer: Any,
        system: str,
        tools: Sequence[Mapping[str, Any]] | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> ChatFormat:
        """The format of ``tokenizer``'s chat template, found by probe renderings
        (:func:`turngym.agents.chat_probe.probe`)."""
        from turngym.agents.chat_probe import probe  # it builds on this module

        return probe(tokenizer, system, tools, template_kwargs)

    def tool_calls(self, action: str) -> int:
        """How many tool calls ``action`` makes that the next observation answers (0: none).

        Counted when tools are offered and every hermes ``<tool_call>`` block of the action (its
        reasoning removed) parses, as a server's hermes tool parser would return them.
        """
        if not self.tools:
            return 0
        parsed = parse_hermes(action_text(action))
        return len(parsed.calls) if parsed.ok else 0

    def first_prompt(self, observation: str) -> list[int]:
        """The first prompt of an episode: system prompt, tools and the first observation."""
        slots = _Slots()
        messages = messages_for(self.system, slots.add(observation, _OBSERVATION), self.system_in_user)
        return self._encode_rendered(self._render(messages), slots)

    def continuation(self, observation: str, action_ids: Sequence[int]) -> list[int]:
        """Tokens appended after a sampled action to present the next observation."""
        calls = 0
        if self.tool is not None:
            calls = self.tool_calls(self.tokenizer.decode(list(action_ids), skip_special_tokens=True))
        if self.tool is not None and calls:
            answers = [self.tool.content(answer) for answer in tool_answers(observation, calls)]
            pieces = [(self.tool.glue, _TEMPLATE), (answers[0], _OBSERVATION)]
            for answer in answers[1:]:
                pieces += [(self.tool.between, _TEMPLATE), (answer, _OBSERVATION)]
            pieces.append((self.tool.suffix, _TEMPLATE))
        else:
            pieces = [(self.glue, _TEMPLATE), (observation, _OBSERVATION), (self.suffix, _TEMPLATE)]
        ids = [i for text, kind in pieces for i in self._encode_piece(text, kind, at_start=False)]
        if action_ids and action_ids[-1] in self.eos_ids and ids and ids[0] == action_ids[-1]:
            return ids[1:]  # the policy sampled the end-of-turn token itself
        return ids

    def window_prompt(self, first_observation: str, history: Sequence[tuple[str, str]]) -> list[int]:
        """A fresh prompt: the task, then ``(action, observation)`` pairs as chat turns.

        Tool results are ``tool`` messages after the assistant turn that made the calls; a template
        that refuses that (Mistral Nemo wants such a turn to carry ``tool_calls``, which other
        templates would render a second time) gets them as user turns.
        """
        try:
            return self._window_prompt(first_observation, history, tool_role=self.tool is not None)
        except Exception:  # the template's raise_exception over tool messages: results as user turns
            if self.tool is None:
                raise
            return self._window_prompt(first_observation, history, tool_role=False)

    def _window_prompt(
        self, first_observation: str, history: Sequence[tuple[str, str]], tool_role: bool
    ) -> list[int]:
        slots = _Slots()
        messages = messages_for(self.system, slots.add(first_observation, _OBSERVATION), self.system_in_user)
        for action, observation in history:
            messages.append({"role": "assistant", "content": slots.add(action, _ACTION)})
            calls = self.tool_calls(action) if tool_role else 0
            if calls and self.tool is not None:
                messages += [
                    {
                        "role": "tool",
                        "tool_call_id": call_id(i),
                        "content": slots.add(self.tool.content(answer), _OBSERVATION),
                    }
                    for i, answer in enumerate(tool_answers(observation, calls))
                ]
            else:
                messages.append({"role": "user", "content": slots.add(observation, _OBSERVATION)})
        return self._encode_rendered(self._render(messages), slots)

    def _render(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return _render(self.tokenizer, messages, self.tools, True, self.template_kwargs)

    def _encode_rendered(self, text: str, slots: _Slots) -> list[int]:
        """Ids of a rendering with slots: the template's text as it encodes, slot texts by kind."""
        parts = _SLOT_RE.split(text)  # template, slot index, template, ..., template
        if sorted(int(i) for i in parts[1::2]) != list(range(len(slots.texts))):
            raise ConfigError(
                "the chat template does not render message contents verbatim once each; the agent loop "
                "cannot place the observations in its prompt"
            )
        ids: list[int] = []
        for k, part in enumerate(parts):
            text, kind = (part, _TEMPLATE) if k % 2 == 0 else slots.texts[int(part)]
            ids += self._encode_piece(text, kind, at_start=k == 0)
        return ids

    def _encode_piece(self, text: str, kind: str, at_start: bool) -> list[int]:
        """Ids of one piece of a prompt; ``kind`` says which added tokens it may contain.

        A piece in the middle of a prompt is encoded after a newline that is then removed, so a
        SentencePiece-style tokenizer does not add the word-start marker it puts at the start of a
        text (the trick transformers uses to encode chat pieces); when the newline's ids do not come
        first (it merged with the piece), the piece is encoded on its own.
        """
        if not text:
            return []
        encode = self._encoder(kind)
        if at_start:
            return encode(text)
        ids, newline = encode("\n" + text), encode("\n")
        return ids[len(newline) :] if ids[: len(newline)] == newline else encode(text)

    def _encoder(self, kind: str) -> Callable[[str], list[int]]:
        if kind == _OBSERVATION:
            return functools.partial(plain_ids, self.tokenizer)
        if kind == _ACTION:
            return self._action_ids
        return functools.partial(_template_ids, self.tokenizer)

    def _action_ids(self, text: str) -> list[int]:
        """A policy's text: special tokens spelled out in it as plain text, other added tokens kept."""
        parts = _special_tokens_re(self.tokenizer).split(text)  # text, special, text, ..., text
        ids: list[int] = []
        for k, part in enumerate(parts):
            kind = _OBSERVATION if k % 2 else _TEMPLATE
            ids += self._encode_piece(part, kind, at_start=False) if k else self._encoder(kind)(part)
        return ids


class _Slots:
    """The texts a rendering holds placeholders for, with how each is encoded."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, text: str, kind: str) -> str:
        self.texts.append((text, kind))
        return _SLOT.format(len(self.texts) - 1)


def plain_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text`` as plain text: no added token (special or not) is matched.

    Runs the fast tokenizer's own pipeline (normalizer, pre-tokenizer, model) without its table of
    added tokens, so ``<|im_end|>`` in the text becomes the ids of its characters.
    """
    backend = tokenizer.backend_tokenizer
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    words = (
        [text]
        if backend.pre_tokenizer is None
        else [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)]
    )
    return [token.id for word in words for token in backend.model.tokenize(word)]


def _template_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _special_tokens_re(tokenizer: Any) -> re.Pattern[str]:
    specials = tuple(t.content for t in tokenizer.added_tokens_decoder.values() if t.special)
    return _alternatives_re(specials)


@functools.lru_cache(maxsize=64)
def _alternatives_re(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """A regex with one capturing group matching any of ``tokens`` (longest first), or nothing."""
    longest_first = sorted(tokens, key=len, reverse=True)
    return re.compile("(" + ("|".join(map(re.escape, longest_first)) or "(?!)") + ")")


def _render(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    tools: tuple[Mapping[str, Any], ...] | None,
    generation_prompt: bool,
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    kwargs: dict[str, Any] = {**(template_kwargs or {})}
    if tools:
        kwargs["tools"] = list(tools)
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=generation_prompt, **kwargs
    )
