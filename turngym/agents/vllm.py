"""The ``vllm`` policy: sampling through an in-process vLLM engine, weights synced in place.

``vllm:PATH`` serves a local Hugging Face model directory (``vllm:tiny``: the project's tiny Qwen2
model) with ``vllm.LLM`` running inside the calling process, so a trainer in the same process can
push new weights into the engine after every update without restarting it or writing files.

How our :class:`~turngym.agents.policy.SamplingParams` map onto vLLM's:

* ``n``, ``temperature`` (0 = greedy), ``top_p``, ``max_new_tokens`` (vLLM's ``max_tokens``),
  ``stop`` (kept in the text, as our contract says: ``include_stop_str_in_output``), the seed and
  ``top_logprobs``. Every prompt is its own request with its own seed (``seeds[i]``, else
  :func:`~turngym.agents.policy.derive_seed` of ``params.seed`` and ``i``): vLLM seeds one
  generator per request, so one seed shared by the G identical prompts of a group would give G
  identical samples. vLLM derives the seeds of the ``n`` samples of one request from its seed, so
  the same seeds, prompts and weights give the same tokens. vLLM always reports the
  log-prob of the sampled token, so ``logprobs=max(top_logprobs, 0)`` is requested and the
  sampled token's entry is read from each position's dictionary.
* Log-probs: the engine is built with ``logprobs_mode="processed_logprobs"``, i.e. vLLM reports
  ``log_softmax(logits / temperature)`` after its logits processors (the default mode,
  ``raw_logprobs``, would report the untempered model distribution, which is not the distribution
  the token was drawn from). With ``top_p == 1`` that is exactly the number the ``hf`` backend
  and the trainer's ``sequence_logprobs`` compute. With ``top_p < 1`` vLLM's processed values are
  taken after nucleus truncation (renormalised over the kept tokens), so they exceed the hf
  backend's pre-truncation numbers by ``-log(kept mass)``; see ``docs/agents.md``. With
  temperature 0 vLLM samples greedily and its processed log-probs are those of the untempered
  distribution, as in the hf backend.
* ``entropies``: vLLM does not expose the full distribution per step; asking for them raises
  :class:`~turngym.errors.PolicyError` (use the ``hf`` backend for entropy-driven methods).

Chunked prefill and seeds on CPU: when the prompts of one step exceed the engine's token budget
(``max_num_batched_tokens``, 4096 on CPU) or its ``max_num_seqs``, vLLM prefills a request in
pieces and rewinds that request's seeded generator after each partial step with ``set_offset``,
which CPU generators do not support (``RuntimeError: CPU Generator does not use offset``). On CPU
:meth:`VLLMPolicy.generate` therefore submits the prompts in consecutive waves that each fit the
budget whole, so no prefill is ever split; on a GPU everything goes to the engine at once.

Failures: a sample that vLLM ends for another reason than ``stop``/``length``, or returns without
its log-probs, becomes an ``error`` completion with no tokens (a made-up log-prob must never reach
a loss); the agent loop ends that episode as a policy error.

Running on CPU (the vLLM CPU wheel) needs a few settings this module applies unless the caller set
them: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (the engine core in this process, so
``collective_rpc`` reaches the model), ``TORCHDYNAMO_DISABLE=1`` (no graph compilation),
``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache), ``enforce_eager`` and float32 weights.

Weight sync: :meth:`VLLMPolicy.update_weights` hands a state dict with Hugging Face parameter
names to every worker's ``reload_weights`` (``llm.collective_rpc``), whose model ``load_weights``
maps the names onto vLLM's fused layers (q/k/v into one projection, gate/up into one) and copies
in place; the engine's prefix cache is then reset so no cached key/value computed with the old
weights is reused. ``version`` counts the updates, as in the ``hf`` backend. vLLM rebuilds a fused
layer from all of its parts, so a pushed state dict must be complete; with
``VLLMConfig(trainable=True)`` the policy keeps a ``transformers`` copy (:attr:`VLLMPolicy.model`)
that partial updates are merged into before its full state dict is pushed. When that copy trains
a LoRA adapter (``model.lora.rank`` > 0), ``update_weights({})`` pushes the merged weights
W + (α/r)·B·A under the base model's names, so the engine serves a plain model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.agents.adapters import has_lora_layers, merged_state_dict
from turngym.agents.policy import Completion, SamplingParams, request_seeds
from turngym.errors import ConfigError, PolicyError

ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "TORCHDYNAMO_DISABLE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
}
"""Environment the engine is started with (``os.environ.setdefault``: the caller's values win)."""


@dataclass
class VLLMConfig:
    """How the engine is built."""

    dtype: str = "float32"
    """Weight dtype (float32 on CPU; ``bfloat16`` or ``auto`` on a GPU)."""
    max_model_len: int | None = None
    """Longest prompt + completion the engine accepts (None: the model's ``max_position_embeddings``)."""
    max_logprobs: int = 20
    """Largest ``top_logprobs`` a request may ask for."""
    gpu_memory_utilization: float = 0.5
    """Share of GPU memory the engine may take (ignored on CPU, where VLLM_CPU_KVCACHE_SPACE rules)."""
    seed: int = 0
    """Engine seed (requests without their own seed draw from it)."""
    trainable: bool = False
    """Also load a ``transformers`` copy of the weights as :attr:`VLLMPolicy.model` for a trainer."""

    def __post_init__(self) -> None:
        if (self.max_model_len is not None and self.max_model_len < 1) or self.max_logprobs < 0:
            raise ConfigError(
                f"VLLMConfig.max_model_len must be >= 1 and max_logprobs >= 0, got "
                f"{self.max_model_len} and {self.max_logprobs}"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"VLLMConfig.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )


def checkpoint_shapes(path: Path) -> tuple[frozenset[str], dict[str, tuple[int, ...]]]:
    """Parameter names and shapes a model directory's safetensors files hold (headers only).

    A model with tied embeddings also accepts ``lm_head.weight`` (``state_dict()`` lists it).
    """
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    if not shapes:
        raise ConfigError(f"{path} holds no *.safetensors weights; vllm:PATH needs safetensors files")
    names = frozenset(shapes)
    embed = shapes.get("model.embed_tokens.weight")
    if embed is not None and "lm_head.weight" not in shapes:
        shapes["lm_head.weight"] = embed
    return names, shapes


def prefill_waves(lengths: Sequence[int], token_budget: int, max_seqs: int) -> list[range]:
    """Consecutive index ranges of prompts (``lengths`` tokens each) that vLLM prefills whole in
    one engine step: at most ``max_seqs`` prompts and ``token_budget`` prompt tokens per wave (a
    single prompt longer than the budget gets a wave of its own).

    Example: lengths ``[3, 3, 3, 5]``, budget 8, max 4 → ``[range(0, 2), range(2, 4)]``.
    """
    waves, start, tokens = [], 0, 0
    for i, length in enumerate(lengths):
        if i > start and (tokens + length > token_budget or i - start >= max_seqs):
            waves.append(range(start, i))
            start, tokens = i, 0
        tokens += length
    if lengths:
        waves.append(range(start, len(lengths)))
    return waves


def vllm_sampling(vllm: Any, config: VLLMConfig, params: SamplingParams, seed: int | None) -> Any:
    """``vllm.SamplingParams`` of ``params`` for one request seeded with ``seed``."""
    if params.entropies:
        raise PolicyError(
            "the vllm backend cannot report entropies (vLLM does not expose the full per-step "
            "distribution); use the hf backend or set SamplingParams.entropies=False"
        )
    if params.top_logprobs > config.max_logprobs:
        raise ConfigError(
            f"top_logprobs={params.top_logprobs} exceeds the engine's max_logprobs="
            f"{config.max_logprobs}; build the policy with VLLMConfig(max_logprobs=...)"
        )
    return vllm.SamplingParams(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        max_tokens=params.max_new_tokens,
        stop=list(params.stop) or None,
        include_stop_str_in_output=True,
        seed=seed,
        logprobs=params.top_logprobs,
        skip_special_tokens=True,
    )


class VLLMPolicy:
    """A token-level policy over an in-process ``vllm.LLM``, with in-place weight updates."""

    def __init__(self, path: str | Path, config: VLLMConfig | None = None, *, name: str = "") -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"vllm:{path} is not a model directory (no config.json); give a directory written by "
                "save_pretrained, or vllm:tiny"
            )
        for key, value in ENGINE_ENV.items():
            os.environ.setdefault(key, value)
        try:
            import vllm
        except ImportError as exc:
            raise ConfigError(
                f"the vllm backend needs the vllm package ({exc}); install it in its own environment "
                "(see .ci/setup.d/vllm.sh) and run turngym from there"
            ) from exc
        self.config = config or VLLMConfig()
        self.path = path
        self.name = name or f"vllm:{path}"
        self.version = 0
        self._vllm = vllm
        self._model: Any = None
        self.llm = vllm.LLM(
            model=str(path),
            dtype=self.config.dtype,
            enforce_eager=True,
            max_model_len=self.config.max_model_len,
            max_logprobs=self.config.max_logprobs,
            logprobs_mode="processed_logprobs",
            gpu_memory_utilization=self.config.gpu_memory_utilization,
            seed=self.config.seed,
        )
        self.tokenizer = self.llm.get_tokenizer()
        eos = self.tokenizer.eos_token_id
        self.pad_id: int = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        self._checkpoint_names, self._shapes = checkpoint_shapes(path)
        if self.config.trainable:
            from turngym.agents.hf import load_tokenizer_and_model

            self._model = load_tokenizer_and_model(path, dtype=self.config.dtype)[1]
            self._shapes.update({k: tuple(v.shape) for k, v in self._model.state_dict().items()})
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        scheduler = self.llm.llm_engine.vllm_config.scheduler_config
        self._token_budget: int = scheduler.max_num_batched_tokens
        self._max_seqs: int = scheduler.max_num_seqs
        self._split_prefills = self.llm.llm_engine.vllm_config.device_config.device_type == "cpu"

    @property
    def model(self) -> Any:
        """The trainable ``transformers`` copy of the served weights (``VLLMConfig(trainable=True)``).

        Train it in place, then call ``update_weights({})`` to push all of its weights into the engine.
        """
        if self._model is None:
            raise ConfigError(
                f"{self.name} holds no trainable copy of its weights; build it with "
                "VLLMConfig(trainable=True) to get policy.model"
            )
        return self._model

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Load ``state_dict`` (Hugging Face names) into the engine in place and bump :attr:`version`.

        With a trainable copy, ``state_dict`` may be partial or empty: it is copied into the copy
        and then all of the copy's weights are pushed. Without one it must name every checkpoint
        parameter, because vLLM's in-place reload rebuilds each fused layer (q/k/v, gate/up) from
        all of its parts. Names and shapes are checked against the checkpoint before anything moves.
        """
        unknown = sorted(k for k in state_dict if k not in self._shapes)
        wrong = [
            f"{k}: {tuple(v.shape)} (expected {self._shapes[k]})"
            for k, v in state_dict.items()
            if k in self._shapes and tuple(v.shape) != self._shapes[k]
        ]
        problems = [f"unknown parameter names {unknown[:3]} ({len(unknown)} in all)"] if unknown else []
        problems += [f"wrong shapes {wrong[:2]} ({len(wrong)} in all)"] if wrong else []
        if problems:
            raise ConfigError(
                f"update_weights got {' and '.join(problems)}; pass the model's own state_dict() names"
            )
        if self._model is not None and has_lora_layers(self._model):
            if state_dict:
                raise ConfigError(
                    "update_weights on a LoRA-trained copy takes no state dict: the adapter trains in "
                    "place and update_weights({}) pushes the merged weights"
                )
            state_dict = merged_state_dict(self._model)
        elif self._model is not None:
            import torch

            own = self._model.state_dict()
            with torch.no_grad():
                for key, value in state_dict.items():
                    own[key].copy_(value)
            state_dict = own
        missing = sorted(set(self._checkpoint_names) - set(state_dict))
        if missing:
            raise ConfigError(
                f"update_weights got a partial state dict ({len(missing)} checkpoint parameters "
                f"missing, e.g. {missing[:3]}); pass all of them, or build the policy with "
                "VLLMConfig(trainable=True) so partial updates are merged into its trainable copy"
            )
        weights = [(key, value.detach()) for key, value in state_dict.items()]
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        except (AssertionError, KeyError, ValueError, RuntimeError) as exc:
            raise PolicyError(
                f"vLLM rejected the new weights ({type(exc).__name__}: {exc}); the engine may hold a "
                "half-loaded model now, so build a new policy"
            ) from exc
        self.llm.reset_prefix_cache()
        self.version += 1

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[Completion]:
        """``len(prompts) * params.n`` completions, prompt-major; ``seeds[i]`` seeds prompt ``i``."""
        if not prompts:
            return []
        if any(len(p) == 0 for p in prompts):
            raise PolicyError("generate got an empty prompt; every prompt needs at least one token")
        vocab = self.llm.llm_engine.model_config.get_vocab_size()
        bad = [t for p in prompts for t in p if not isinstance(t, int) or not 0 <= t < vocab]
        if bad:
            raise PolicyError(f"prompts must be lists of token ids in [0, {vocab}); got {bad[0]!r}")
        limit = min(
            self.max_model_len - 1, self._token_budget if self._split_prefills else self.max_model_len
        )
        too_long = [len(p) for p in prompts if len(p) > limit]
        if too_long:
            raise PolicyError(
                f"a prompt of {too_long[0]} tokens does not fit the engine (at most {limit} prompt "
                f"tokens: max_model_len={self.max_model_len}, max_num_batched_tokens="
                f"{self._token_budget}); shorten it or build the policy with a larger "
                "VLLMConfig.max_model_len"
            )
        sampling = [
            vllm_sampling(self._vllm, self.config, params, seed)
            for seed in request_seeds(params, len(prompts), seeds)
        ]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = []
        for wave in self._waves([len(p) for p in prompts]):
            outputs += self.llm.generate(
                [requests[i] for i in wave], [sampling[i] for i in wave], use_tqdm=False
            )
        return [self._completion(sample, params.top_logprobs) for out in outputs for sample in out.outputs]

    def _waves(self, lengths: Sequence[int]) -> list[range]:
        if not self._split_prefills:
            return [range(len(lengths))]
        return prefill_waves(lengths, self._token_budget, self._max_seqs)

    @staticmethod
    def _completion(sample: Any, top_k: int) -> Completion:
        ids = tuple(sample.token_ids)
        per_step = sample.logprobs or []
        if len(per_step) != len(ids):
            return Completion((), (), sample.text, "error", error="vLLM returned no log-probs")
        logprobs = tuple(float(step[tok].logprob) for tok, step in zip(ids, per_step, strict=True))
        top: tuple[tuple[tuple[int, float], ...], ...] = ()
        if top_k:
            top = tuple(
                tuple(
                    (tok, float(lp.logprob))
                    for tok, lp in sorted(step.items(), key=lambda kv: kv[1].rank)[:top_k]
                )
                for step in per_step
            )
        reason = sample.finish_reason
        if reason not in ("stop", "length"):
            return Completion((), (), sample.text, "error", error=f"vLLM: {reason}")
        return Completion(ids, logprobs, sample.text, reason, top_logprobs=top)
