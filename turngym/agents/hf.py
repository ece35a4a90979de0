"""The ``hf`` policy: batched sampling from any local Hugging Face causal LM (CPU or CUDA).

``hf:PATH`` loads a directory written by ``save_pretrained`` (a Qwen2.5 or Llama checkpoint on
disk, or the project's own ``hf:tiny``) with ``AutoTokenizer``/``AutoModelForCausalLM``; a LoRA
adapter directory (a LoRA run's ``final/``) loads its base and the adapter, and ``hf:random:<arch>``
builds a randomly initialised model of a real architecture.

Sampling is a hand-written decode loop rather than ``model.generate`` so that the numbers the
trainer needs come from the very logits the tokens were drawn from:

1. Prompts are left-padded into one batch; the attention mask hides the padding and position ids
   count only real tokens, so a padded row computes what the lone prompt would.
2. One forward pass over the prompts fills the KV cache; each later step feeds one token per row.
3. At each step the logits (float32) are divided by the temperature and log-softmaxed: that
   distribution ``p`` gives the reported log-prob of the sampled token, its entropy
   ``-sum p log p`` and the top-k log-probs. Top-p then keeps the smallest set of most likely tokens
   whose mass reaches ``top_p`` and the token is drawn from it, renormalised, by inverse-CDF
   sampling: each row owns a CPU ``torch.Generator`` seeded with its own seed (see
   :func:`~turngym.agents.policy.request_seeds`) that draws its ``max_new_tokens`` uniform numbers
   up front (number ``s`` picks the token of step ``s``), so a row's
   tokens do not depend on the other rows of the batch, nor on the device (same seed, prompt and
   weights: same tokens). Without any seed the generators are seeded from OS entropy; torch's
   global RNG is never touched. Temperature 0 is greedy decoding and reports the untempered
   log-probs.
4. A row stops at an end-of-sequence id (the tokenizer's and the generation config's) or when its
   decoded text contains a stop string; the stop token is part of the sample (it was sampled).
   A finished row is fed padding with attention mask 0 until half of the batch is done; then the
   finished rows leave it (their caches kept for the next call) and the others go on.
5. Prefix reuse (:mod:`~turngym.agents.prefix_cache`): every row's keys and values are kept
   after a call. A prompt of the next call that extends a kept sequence (the agent loop's ``full``
   mode appends an observation to the previous prompt and action) runs only its new tokens, right
   after the kept ones. With ``prefix_match = "longest"`` a prompt reuses the kept sequence it
   shares the longest prefix with, also when it is not an extension (an ARPO copy re-samples its
   parent's last prompt: all of it but the last token is reused). Prompts new to the cache that
   start alike (a GRPO group's copies of one prompt, a system prompt every task shares) run their
   common head once and reuse it. Prompts that reuse nothing (new episodes joining the
   asynchronous loop's next batch) run whole in a forward of their own and their keys and values
   are merged in (right-aligned, the gap masked). The kept rows are dropped
   when the weights change (a version bump or an in-place update of any parameter).
6. Length groups: a call's rows are split into groups of similar length, each sampled as its own
   batch (a short row is never padded to a long row's width), and every decode step appends into
   room reserved ahead in the cache rather than copying it (:mod:`~turngym.agents.kv`). The
   prefill of cached and new rows is :mod:`~turngym.agents.prefill`'s.
7. Continuous batching (:meth:`HFPolicy.generate_continuous`): between decode steps requests the
   caller hands over join the running decode (prefilled, then stacked under the running rows),
   and every row's completion is handed back the moment it finishes. Each row draws the uniform
   of its own step, so a request samples the same tokens whenever it joins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from turngym.agents.kv import plain_layers, reserve, select_rows
from turngym.agents.policy import Admission, Completion, Request, SamplingParams, request_seeds
from turngym.agents.prefill import Prefiller, stack_prefills
from turngym.agents.prefix_cache import (
    NO_REUSE,
    CachedRow,
    PrefixStore,
    Reuse,
    keep_rows,
    length_groups,
)
from turngym.agents.sampling import pick, row_generator
from turngym.errors import ConfigError, PolicyError


@dataclass
class _RowOut:
    """What one row has sampled so far."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    top: list[tuple[tuple[int, float], ...]] = field(default_factory=list)
    finish: str | None = None


@dataclass
class _Batch:
    """The rows of one decode (it grows when requests join): prompt, tag, generator, output."""

    rows: list[list[int]]
    tags: list[Any]
    generators: list[torch.Generator]
    out: list[_RowOut] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = [_RowOut() for _ in self.rows]

    def add(self, rows: list[list[int]], tags: list[Any], generators: list[torch.Generator]) -> None:
        self.rows += rows
        self.tags += tags
        self.generators += generators
        self.out += [_RowOut() for _ in rows]


def _check_prompts(rows: list[list[int]]) -> None:
    if any(len(r) == 0 for r in rows):
        raise PolicyError("generate got an empty prompt; every prompt needs at least one token")


def load_tokenizer_and_model(
    path: str | Path, *, device: str = "cpu", dtype: str = "float32"
) -> tuple[Any, torch.nn.Module]:
    """``(tokenizer, model)`` of a local model directory, a LoRA adapter directory (its base plus
    the adapter, :mod:`~turngym.agents.adapters`) or ``random:<arch>``
    (:mod:`~turngym.agents.random_models`); raises ConfigError when it is none of them."""
    import transformers

    from turngym.agents.adapters import is_adapter_dir, load_adapter_dir
    from turngym.agents.random_models import build_random, is_random_spec

    if is_random_spec(path):
        return build_random(str(path), dtype=getattr(torch, dtype), device=device)
    path = Path(path)
    if is_adapter_dir(path) and not (path / "config.json").is_file():
        return load_adapter_dir(path, lambda base: load_tokenizer_and_model(base, device=device, dtype=dtype))
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"hf:{path} is not a model directory (no config.json); give a directory written by "
            "save_pretrained, or hf:tiny"
        )
    transformers.utils.logging.disable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


class HFPolicy:
    """A trainable policy over a ``transformers`` causal LM."""

    def __init__(
        self, model: Any, tokenizer: Any, *, name: str = "hf", num_threads: int | None = None
    ) -> None:
        self.name = name
        self.num_threads = num_threads
        """CPU threads torch uses while sampling (None: torch's setting). Tiny models run fastest on 1."""
        self.tokenizer = tokenizer
        self._model = model
        self.version = 0
        eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos.update([gen_eos] if isinstance(gen_eos, int) else (gen_eos or []))
        if not eos:
            raise ConfigError("the tokenizer and generation config define no end-of-sequence token")
        self.eos_ids = frozenset(eos)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
        self.prefix_cache = True
        """Keep every row's KV cache for the next call's prompts that extend it, and run a head that
        several new prompts share once (False: every prompt runs whole)."""
        self.prefix_match = "extend"
        """Which prompts reuse the kept cache: ``extend`` (those extending a cached sequence) or
        ``longest`` (any shared prefix; ARPO's branching rollout switches to it while it runs, so
        a copy re-sampling its parent's prompt reuses it). ``extend`` keeps a call's numbers
        independent of an unrelated earlier call; ``longest`` saves more."""
        self._store = PrefixStore()
        self._prefiller = Prefiller(model, self.pad_id, self._store)
        self.join_divisor = 4
        """Continuous batching: waiting requests join a running decode of ``R`` rows once at least
        ``R // join_divisor`` of them (and at least one) fit; each join costs a prefill forward and
        a copy of the batch's cache."""
        self.min_shared_head = 16
        """Rows new to the cache that share at least this many leading tokens run them once."""
        self.cache_hits = 0
        """generate() calls that reused the previous call's KV cache."""

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str = "cpu", dtype: str = "float32", num_threads: int | None = None
    ) -> HFPolicy:
        tokenizer, model = load_tokenizer_and_model(path, device=device, dtype=dtype)
        return cls(model, tokenizer, name=f"hf:{path}", num_threads=num_threads)

    @property
    def model(self) -> torch.nn.Module:
        return self._model

    @property
    def prefilled_tokens(self) -> int:
        """Prompt tokens run through the model so far (reused cache entries are not counted)."""
        return self._prefiller.prefilled_tokens

    @property
    def device(self) -> torch.device:
        return next(self._model.parameters()).device

    def update_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state_dict`` (full or partial) into the model and bump :attr:`version`."""
        own = self._model.state_dict()
        unknown = sorted(set(state_dict) - set(own))
        if unknown:
            raise ConfigError(
                f"update_weights got {len(unknown)} unknown parameter names, e.g. {unknown[:3]}"
            )
        for key, value in state_dict.items():  # check everything before changing anything
            if own[key].shape != value.shape:
                raise ConfigError(
                    f"update_weights: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}"
                )
        with torch.no_grad():
            for key, value in state_dict.items():
                own[key].copy_(value)
        self.version += 1

    # ---- sampling ---------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[Completion]:
        """``len(prompts) * params.n`` completions, prompt-major; ``seeds[i]`` seeds prompt ``i``."""
        if not prompts:
            return []
        rows = [list(p) for p in prompts for _ in range(params.n)]
        generators = [
            row_generator(seed, j, params.n)
            for seed in request_seeds(params, len(prompts), seeds)
            for j in range(params.n)
        ]
        done: dict[int, Completion] = {}
        self._run(rows, list(range(len(rows))), generators, params, done.__setitem__, None)
        return [done[i] for i in range(len(rows))]

    def generate_continuous(
        self, requests: Sequence[Request], params: SamplingParams, admission: Admission
    ) -> None:
        """Continuous batching (:class:`~turngym.agents.policy.ContinuousPolicy`): between decode
        steps, requests that ``admission.take`` hands over are prefilled (reusing kept rows like any
        prompt) and join the running decode when their length falls in its length group; every
        row's completion goes to ``admission.deliver`` the moment it finishes. A request's seed
        (OS entropy when None) gives it the same tokens whenever it joins."""
        if params.n != 1:
            raise PolicyError(f"generate_continuous samples one completion per request, got n={params.n}")
        if not requests:
            return
        rows = [list(prompt) for _, prompt, _ in requests]
        generators = [row_generator(seed, 0, 1) for _, _, seed in requests]
        tags = [tag for tag, _, _ in requests]
        self._run(rows, tags, generators, params, admission.deliver, admission.take)

    def clear_prefix_cache(self) -> None:
        """Forget the kept rows: the next call runs every prompt whole."""
        self._store.clear()

    def _run(
        self,
        rows: list[list[int]],
        tags: list[Any],
        generators: list[torch.Generator],
        params: SamplingParams,
        emit: Callable[[Any, Completion], None],
        take: Callable[[int, Callable[[int], bool], int], list[Request]] | None,
    ) -> None:
        _check_prompts(rows)
        threads, training = torch.get_num_threads(), self._model.training
        try:
            if self.num_threads:
                torch.set_num_threads(self.num_threads)
            self._model.eval()  # sampling never uses dropout, even between the trainer's steps
            with torch.inference_mode():
                self._sample_all(rows, tags, params, generators, emit, take)
        except torch.OutOfMemoryError as exc:
            raise PolicyError(f"out of memory sampling a batch of {len(rows)} prompts: {exc}") from exc
        finally:
            torch.set_num_threads(threads)
            self._model.train(training)

    def _sample_all(
        self,
        rows: list[list[int]],
        tags: list[Any],
        params: SamplingParams,
        generators: list[torch.Generator],
        emit: Callable[[Any, Completion], None],
        take: Callable[[int, Callable[[int], bool], int], list[Request]] | None,
    ) -> None:
        """Every row, in length groups; the rows' caches are kept for the next call."""
        stamp = self._weights_stamp()
        if self._store.stamp != stamp:  # rows from other weights: gone before this call adds any
            self._store.put([], stamp)
        reuses = self._reuses(rows)
        self.cache_hits += any(r.row >= 0 for r in reuses)
        kept: list[CachedRow] = []
        try:
            if self.prefix_cache:
                reuses = self._prefiller.share_heads(rows, reuses, self.min_shared_head)
            for group in length_groups([len(r) for r in rows]):
                batch = _Batch(
                    rows=[rows[i] for i in group],
                    tags=[tags[i] for i in group],
                    generators=[generators[i] for i in group],
                )
                kept += self._sample(batch, [reuses[i] for i in group], params, emit, take)
        finally:
            self._store.clear()  # consumed either way
        if self.prefix_cache:
            self._store.put(kept, stamp)

    def _sample(
        self,
        batch: _Batch,
        reuses: list[Reuse],
        params: SamplingParams,
        emit: Callable[[Any, Completion], None],
        take: Callable[[int, Callable[[int], bool], int], list[Request]] | None,
    ) -> list[CachedRow]:
        """Decode ``batch`` to the end, emitting each row's completion when it finishes; with
        ``take``, requests admitted between steps join it. Returns the rows' caches to keep."""
        device, limit = self.device, params.max_new_tokens
        logits, cache, mask, next_pos, present = self._prefiller.run(batch.rows, reuses, limit - 1)
        reserve(cache, limit - 1)  # decode appends in place (kv.py)
        uniforms = self._uniforms([batch.generators[i] for i in present], limit)
        keep = self.prefix_cache and plain_layers(cache)
        kept: list[CachedRow] = []
        while present:  # present[p]: the row at position p of the batch tensors
            tok_list = self._draw(batch, present, logits, uniforms, params, emit)
            alive = [p for p, i in enumerate(present) if batch.out[i].finish is None]
            can_join = take is not None and plain_layers(cache)
            at_least = max(1, len(alive) // self.join_divisor)  # a prefill of one or two is no bargain
            joining = take(len(alive), self._fits(mask.shape[1]), at_least) if can_join else []
            if joining or (alive and 2 * len(alive) <= len(present) and plain_layers(cache)):
                gone = [p for p, i in enumerate(present) if batch.out[i].finish is not None]  # they leave
                if keep:
                    kept += self._keep(batch, present, gone, cache, mask)
                index = torch.tensor(alive, device=device, dtype=torch.long)
                room = max((limit - len(batch.out[present[p]].ids) for p in alive), default=0)
                mask, next_pos, uniforms = (t.index_select(0, index) for t in (mask, next_pos, uniforms))
                start = int(mask.any(0).int().argmax()) if len(alive) else 0  # padding only they had
                select_rows(cache, index, room=room, start=start)
                mask = mask[:, start:]
                tok_list = [tok_list[p] for p in alive]
                present = [present[p] for p in alive]
                alive = list(range(len(present)))
            if alive:
                live = [batch.out[i].finish is None for i in present]
                feed = [tok if on else self.pad_id for tok, on in zip(tok_list, live, strict=True)]
                mask = torch.cat([mask, torch.tensor(live, dtype=mask.dtype, device=device)[:, None]], dim=-1)
                result = self._prefiller.forward(
                    torch.tensor(feed, device=device)[:, None], mask, next_pos, cache
                )
                logits, cache = result.logits[:, -1, :].float(), Prefiller.cache_of(result)
                next_pos = next_pos + 1
            elif not joining:
                break
            if joining:
                running = (logits, cache, mask, next_pos) if alive else None
                logits, cache, mask, next_pos, fresh, joined = self._admit(batch, joining, params, running)
                uniforms = torch.cat([uniforms, fresh]) if alive else fresh
                present = present + joined
        if keep and present:
            kept += self._keep(batch, present, list(range(len(present))), cache, mask)
        return kept

    def _draw(
        self,
        batch: _Batch,
        present: list[int],
        logits: torch.Tensor,
        uniforms: torch.Tensor,
        params: SamplingParams,
        emit: Callable[[Any, Completion], None],
    ) -> list[int]:
        """Sample a token at every batch position (``present[p]`` is its row) from ``logits``
        ``[P, V]`` with each row's uniform for its own step, record it for the rows still going and
        emit the completion of each row that finishes now; returns the sampled ids."""
        limit = params.max_new_tokens
        steps = torch.tensor([min(len(batch.out[i].ids), limit - 1) for i in present], device=logits.device)
        tokens, logprobs, dist = pick(logits, params, uniforms.gather(1, steps[:, None]).squeeze(1))
        ent = -(dist.exp() * dist).nan_to_num().sum(-1) if params.entropies else None
        top = dist.topk(params.top_logprobs, dim=-1) if params.top_logprobs else None
        tok_list, lp_list = tokens.tolist(), logprobs.tolist()
        is_eos = torch.isin(tokens, torch.tensor(sorted(self.eos_ids), device=tokens.device)).tolist()
        for p, i in enumerate(present):
            row = batch.out[i]
            if row.finish is not None:
                continue
            row.ids.append(tok_list[p])
            row.logprobs.append(lp_list[p])
            if ent is not None:
                row.entropies.append(float(ent[p]))
            if top is not None:
                row.top.append(tuple(zip(top.indices[p].tolist(), top.values[p].tolist(), strict=True)))
            if is_eos[p] or (params.stop and self._hits_stop(row.ids, params.stop)):
                row.finish = "stop"
            elif len(row.ids) == limit:
                row.finish = "length"
            if row.finish is not None:
                emit(batch.tags[i], self._completion(row))
        return tok_list

    def _admit(
        self,
        batch: _Batch,
        joining: list[Request],
        params: SamplingParams,
        running: tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """Prefill the ``joining`` requests (reusing kept rows, also those that left this call),
        add them to ``batch`` and stack them after the ``running`` rows; returns the merged
        ``(logits, cache, mask, next_pos)``, the new positions' uniforms and their rows."""
        rows = [list(prompt) for _, prompt, _ in joining]
        _check_prompts(rows)
        reuses = self._reuses(rows)
        logits, cache, mask, next_pos, order = self._prefiller.run(rows, reuses, params.max_new_tokens - 1)
        generators = [row_generator(seed, 0, 1) for _, _, seed in joining]
        joined = [len(batch.rows) + j for j in order]
        batch.add(rows, [tag for tag, _, _ in joining], generators)
        fresh = self._uniforms([generators[j] for j in order], params.max_new_tokens)
        if running is None:
            reserve(cache, params.max_new_tokens - 1)
            return logits, cache, mask, next_pos, fresh, joined
        merged = stack_prefills([running, (logits, cache, mask, next_pos)], room=params.max_new_tokens - 1)
        return (*merged, fresh, joined)

    def _reuses(self, rows: list[list[int]]) -> list[Reuse]:
        """What each row reuses of the store (whose rows are this call's weights')."""
        if not self.prefix_cache:
            return [NO_REUSE] * len(rows)
        return self._store.match(rows, self.prefix_match, self._store.stamp)

    def _keep(
        self, batch: _Batch, present: list[int], positions: list[int], cache: Any, mask: torch.Tensor
    ) -> list[CachedRow]:
        """The caches of the rows at ``positions`` of the batch, also added to the store so that a
        request admitted later in this call can reuse them."""
        fed = [batch.rows[present[p]] + batch.out[present[p]].ids[:-1] for p in positions]
        rows = [row for row in keep_rows(cache, mask, fed, positions) if row is not None]
        self._store.add(rows)
        return rows

    @staticmethod
    def _fits(width: int) -> Callable[[int], bool]:
        """Whether a prompt of a given length falls in the length group of a batch ``width`` wide."""
        return lambda length: len(length_groups([width, length])) == 1

    def _uniforms(self, generators: list[torch.Generator], limit: int) -> torch.Tensor:
        """``[B, limit]``: row b's draw for each step, from its own stream."""
        return torch.stack([torch.rand(limit, generator=g, dtype=torch.float64) for g in generators]).to(
            self.device
        )

    def _completion(self, row: _RowOut) -> Completion:
        return Completion(
            token_ids=tuple(row.ids),
            logprobs=tuple(row.logprobs),
            text=self.tokenizer.decode(row.ids, skip_special_tokens=True),
            finish_reason="stop" if row.finish == "stop" else "length",
            entropies=tuple(row.entropies),
            top_logprobs=tuple(row.top),
        )

    def _weights_stamp(self) -> tuple[int, tuple[int, ...]]:
        """Changes whenever the weights do (update_weights, or an optimizer step in place)."""
        return self.version, tuple(p._version for p in self._model.parameters())

    def _hits_stop(self, ids: list[int], stop: Sequence[str]) -> bool:
        tail = self.tokenizer.decode(ids[-32:], skip_special_tokens=False)
        return any(s in tail for s in stop)


def sequence_logprobs(
    model: torch.nn.Module, prompt: Sequence[int], completion: Sequence[int], temperature: float = 1.0
) -> torch.Tensor:
    """Log-probs of ``completion`` after ``prompt`` from one plain forward pass (no cache, no pad).

    The reference the trainer recomputes and the tests compare :class:`HFPolicy`'s numbers to.
    """
    ids = torch.tensor([list(prompt) + list(completion)], device=next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    scale = temperature if temperature > 0 else 1.0
    dist = torch.log_softmax(logits / scale, dim=-1)
    return dist.gather(-1, torch.tensor(list(completion), device=ids.device)[:, None]).squeeze(-1)
