"""The policy contract: what the agent loop and the trainer call to sample tokens.

A :class:`Policy` works on token ids. ``generate(prompts, params, seeds=None)`` takes a batch of
prompts (lists of token ids of the policy's own tokenizer) and returns ``len(prompts) * params.n``
:class:`Completion` objects, prompt-major (the ``n`` samples of prompt 0 first).

Sampling streams. Every prompt of a batch draws its own random stream, so identical prompts (the G
copies of a group's first turn) sample independently: prompt ``i`` is seeded with ``seeds[i]``
when the caller gives per-prompt seeds (the agent loop derives one per episode and turn), else
with :func:`derive_seed` ``(params.seed, i)``, else from fresh OS entropy. The ``j``-th of the
``n`` samples of a prompt uses :func:`derive_seed` ``(seed_i, j)`` (the ``hf`` backend) or the
engine's own derivation from ``seed_i`` (vLLM). Backends that sample per request (``hf``,
``vllm``) thus give an episode the same tokens whichever batch it lands in, up to floating-point
batching effects in the logits. A completion
carries the sampled ids, the log-probability of each sampled id under the distribution it was drawn
from (after temperature, before top-p truncation, as vLLM and verl report it), the decoded text, the
finish reason and, when asked for, per-token entropies and the top-k log-probs at each position
(ARPO's and EMPG's entropy signals).

A :class:`TrainablePolicy` (the ``hf`` backend) also exposes the torch model it samples from,
``update_weights(state_dict)`` and a ``version`` counter that every update increments; the loop
stamps that version into each trajectory's metadata so the trainer can tell stale rollouts.

A :class:`ChatPolicy` (the ``openai`` backend) works on chat messages instead of token ids: remote
endpoints do not hand back token ids that could be trained on, so it is for evaluation only.

The agent loop's entry points (``turngym.agents.loop``), stable for the trainer to build on::

    run_group(env_factory, policy, tokenizer, task_id, seed, group_size, config) -> list[Trajectory]
        G episodes of one task (same task id and env seed) in lock-step: one generate() per turn
        for the whole batch.
    run_batch(env_factory, policy, tokenizer, jobs, config) -> list[Trajectory]
        Episodes of arbitrary (task_id, seed) jobs in lock-step batches of ``config.batch_size``.
    turngym.agents.async_loop.run_episodes(env_factory, policy, tokenizer, jobs, config, settings)
        The same jobs, each episode its own asyncio task (``settings.max_concurrent`` in flight).

``env_factory`` is a zero-argument callable returning a fresh :class:`~turngym.envs.core.TextEnv`;
``tokenizer`` is a Hugging Face tokenizer with a chat template; ``config`` is a :class:`LoopConfig`
(context mode ``full`` or ``window:k``, sampling params, token budgets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from turngym.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    import torch

FinishReason = Literal["stop", "length", "error"]
"""``stop``: an end-of-sequence token or a stop string ended the sample; ``length``: the
``max_new_tokens`` budget ran out; ``error``: the backend failed on this sample."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample; the same fields as vLLM/OpenAI where they overlap."""

    n: int = 1
    """Samples per prompt."""
    temperature: float = 1.0
    """0 means greedy decoding (log-probs are then those of the untempered distribution)."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 keeps the whole distribution."""
    max_new_tokens: int = 256
    """Budget of generated tokens per sample."""
    stop: tuple[str, ...] = ()
    """Strings that end a sample; the stop string is kept in the output (its tokens were sampled)."""
    seed: int | None = None
    """Makes sampling reproducible: same seed, prompts and weights give the same tokens (each prompt
    of a batch draws its own stream derived from it; per-prompt ``seeds`` of ``generate`` win)."""
    top_logprobs: int = 0
    """How many of the most likely tokens' log-probs to report per position (0: none)."""
    entropies: bool = False
    """Report the entropy of the sampling distribution at every generated position."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ConfigError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.top_logprobs < 0:
            raise ConfigError(f"SamplingParams.top_logprobs must be >= 0, got {self.top_logprobs}")


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integer parts, stable across processes (a run's iteration, a
    prompt of a batch, a sample of a prompt, an episode's turn).

    ``SeedSequence([|p| for p in parts])`` mixes them, so neighbouring parts give unrelated streams.
    """
    state = np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> 1)


def request_seeds(params: SamplingParams, count: int, seeds: Sequence[int] | None) -> list[int | None]:
    """The seed of each of ``count`` prompts: ``seeds`` when given, else derived from ``params.seed``.

    ``None`` entries (no seed anywhere) mean "draw from fresh entropy" to the backend.
    """
    if seeds is not None:
        if len(seeds) != count:
            raise PolicyError(f"generate got {len(seeds)} seeds for {count} prompts; pass one per prompt")
        return [int(s) for s in seeds]
    if params.seed is None:
        return [None] * count
    return [derive_seed(params.seed, i) for i in range(count)]


@dataclass(frozen=True)
class Completion:
    """One sample for one prompt."""

    token_ids: tuple[int, ...]
    """The sampled token ids, including a final end-of-sequence id when one was sampled."""
    logprobs: tuple[float, ...]
    """Log-probability of each sampled id under the sampling distribution."""
    text: str
    """``token_ids`` decoded, special tokens removed."""
    finish_reason: FinishReason
    entropies: tuple[float, ...] = ()
    """Entropy (nats) of the sampling distribution at each position, when requested."""
    top_logprobs: tuple[tuple[tuple[int, float], ...], ...] = ()
    """Per position, the ``(token_id, logprob)`` pairs of the most likely tokens, when requested."""
    error: str = ""
    """What went wrong when ``finish_reason == "error"``."""

    def __post_init__(self) -> None:
        if len(self.logprobs) != len(self.token_ids):
            raise ValueError(
                f"Completion has {len(self.logprobs)} logprobs for {len(self.token_ids)} tokens; "
                "they must match one to one"
            )


@dataclass(frozen=True)
class ChatReply:
    """One reply of a :class:`ChatPolicy`."""

    text: str
    """The assistant's reply as the env will read it (native tool calls rendered as text)."""
    finish_reason: FinishReason
    completion_tokens: int = 0
    """Tokens the endpoint reports it generated (for tokens/s)."""
    tool_calls: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    """Native tool calls as ``{"name": ..., "arguments": {...}}``."""
    error: str = ""


@runtime_checkable
class Policy(Protocol):
    """A token-level sampler (``hf``, ``scripted``, ``expert``)."""

    name: str

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[Completion]:
        """``len(prompts) * params.n`` completions, prompt-major; ``seeds[i]`` seeds prompt ``i``."""
        ...


Request = tuple[Any, Sequence[int], int | None]
"""One request of a continuous call: ``(tag, prompt, seed)``; the tag names it to :class:`Admission`."""


@dataclass(frozen=True)
class Admission:
    """The caller's side of a continuous call (:class:`ContinuousPolicy`)."""

    take: Callable[[int, Callable[[int], bool], int], list[Request]]
    """``take(running, fits, at_least)``: waiting requests that join the running decode now (at
    most the caller's batch limit minus the ``running`` rows, only prompts whose length ``fits``),
    or none while fewer than ``at_least`` of them are there."""
    deliver: Callable[[Any, Completion], None]
    """``deliver(tag, completion)``: called the moment a request's row finishes."""


@runtime_checkable
class ContinuousPolicy(Policy, Protocol):
    """A policy that admits new requests into a decode that is already running (the ``hf`` backend)
    and hands each completion back as soon as its row is done, not when the call ends."""

    def generate_continuous(
        self, requests: Sequence[Request], params: SamplingParams, admission: Admission
    ) -> None:
        """Sample one completion (``params.n`` must be 1) for each request and each request
        ``admission.take`` admits while the call runs, handing each to ``admission.deliver``.
        An exception leaves the requests not yet delivered to the caller."""
        ...


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    """A policy whose weights the trainer updates."""

    version: int
    """Incremented by every :meth:`update_weights`."""

    @property
    def model(self) -> torch.nn.Module:
        """The torch module generate() samples from (train it, then call update_weights)."""
        ...

    def update_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load new weights (a full or partial state dict) and increment :attr:`version`."""
        ...


@runtime_checkable
class EnvAwarePolicy(Policy, Protocol):
    """A policy that reads the envs it acts in (the ``expert`` backend).

    The loop calls :meth:`attach` before each ``generate`` with the env of every prompt, in order.
    """

    def attach(self, envs: Sequence[Any]) -> None: ...


@runtime_checkable
class ChatPolicy(Protocol):
    """A message-level policy (``openai``): evaluation only, no trainable tokens."""

    name: str

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        params: SamplingParams,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[ChatReply]:
        """One reply per conversation (``params.n`` is ignored)."""
        ...


@dataclass(frozen=True)
class LoopConfig:
    """How the agent loop runs episodes."""

    context: str = "full"
    """``full`` (one growing sequence) or ``window:k`` (task + the last ``k`` turns per prompt)."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    """Sampling params of every turn; ``n`` must be 1 (a group is G env copies, not n samples)."""
    max_context_tokens: int = 4096
    """A prompt longer than this ends the episode as ``truncated``."""
    batch_size: int = 8
    """Episodes that share one ``generate`` call per turn (``run_batch``)."""
    env_id: str = ""
    """Stored in every trajectory."""
    episode_timeout_s: float | None = None
    """Wall-clock budget of one episode, checked before each turn (None: no limit); an episode past
    it ends as ``timeout``."""
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra variables for the chat template (Qwen3's ``enable_thinking``, Llama's ``date_string``)."""

    def __post_init__(self) -> None:
        _ = self.window  # raises ConfigError on a malformed context mode
        if self.sampling.n != 1:
            raise ConfigError(
                f"LoopConfig.sampling.n must be 1 (groups are env copies), got {self.sampling.n}"
            )
        if self.max_context_tokens < 1 or self.batch_size < 1:
            raise ConfigError(
                "LoopConfig.max_context_tokens and batch_size must be >= 1, got "
                f"{self.max_context_tokens} and {self.batch_size}"
            )

    @property
    def window(self) -> int | None:
        """``None`` in ``full`` mode, else the ``k`` of ``window:k``."""
        if self.context == "full":
            return None
        head, _, k = self.context.partition(":")
        if head != "window" or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"context must be 'full' or 'window:k' with k >= 1, got {self.context!r}")
        return int(k)
