"""The ``hf`` sampler's prefill: prompts into a batch KV cache, reusing kept rows.

:class:`Prefiller` runs a call's prompts (:meth:`Prefiller.run`) and gives back the float32 logits
of each row's last position ``[B, V]``, the KV cache, its attention mask ``[B, T]`` and each row's
next position ``[B, 1]``. Rows are left-padded (the mask hides the padding, positions count real
tokens only). A row that reuses a kept row of the :class:`~turngym.agents.prefix_cache.PrefixStore`
runs only its new tokens on top of the kept keys and values; a row new to the store runs whole,
in a forward of its own, and the two caches are merged. :meth:`Prefiller.share_heads` runs the
head that several new rows share once and adds it to the store. Every forward asks for the last
position's logits only where the model allows it (``logits_to_keep=1``): a prefill never holds
``[B, T, V]`` logits.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from turngym.agents.adapters import base_model
from turngym.agents.kv import left_pad, plain_layers, stack_rows
from turngym.agents.prefix_cache import PrefixStore, Reuse, keep_rows, shared_heads


class Prefiller:
    """Prefills for one model (see the module doc); counts the prompt tokens it runs."""

    def __init__(self, model: Any, pad_id: int, store: PrefixStore) -> None:
        self.model = model
        self.pad_id = pad_id
        self.store = store
        params = inspect.signature(base_model(model).forward).parameters  # transformers 5 renamed the cache
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.prefilled_tokens = 0
        """Prompt tokens run through the model so far (reused cache entries are not counted)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def share_heads(self, rows: list[list[int]], reuses: list[Reuse], min_shared: int) -> list[Reuse]:
        """Rows new to the store that start alike (a GRPO group's copies of one prompt, a shared
        system prompt) get their common head run once, added to the store for this call and
        reused like a kept row (:func:`~turngym.agents.prefix_cache.shared_heads`)."""
        fresh = [i for i, r in enumerate(reuses) if r.row < 0]
        clusters = shared_heads([rows[i] for i in fresh], min_shared=min_shared)
        if not clusters:
            return reuses
        heads = [rows[fresh[members[0]]][:n] for members, n in clusters]
        _, cache, mask, _ = self.run_fresh(heads)
        kept = keep_rows(cache, mask, heads) if plain_layers(cache) else []
        whole = [row for row in kept if row is not None]
        if len(whole) != len(heads):
            return reuses
        start = self.store.add(whole)
        out = list(reuses)
        for c, (members, n) in enumerate(clusters):
            for m in members:
                out[fresh[m]] = Reuse(start + c, n)
        return out

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, past: Any) -> Any:
        """One forward of ``ids`` ``[B, T]`` after the cache ``past`` (None: none) with explicit
        positions, asking for the last position's logits only (also each decode step's)."""
        kwargs = {self._cache_kw: past} if past is not None else {}
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **kwargs,
            **self._last_only,
        )

    def _left_padded(self, rows: Sequence[Sequence[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def run(
        self, rows: list[list[int]], reuses: list[Reuse], decode_steps: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor, list[int]]:
        """Run the prompts: float32 logits of their last position ``[B, V]``, the KV cache (with
        ``decode_steps`` columns of room for the decode's appends), its attention mask ``[B, T]``,
        each row's next position ``[B, 1]``, and which row sits at each batch position.

        Rows that reuse a kept row run only their new tokens on top of it; rows new to the store
        run on their own without a cache (so they are neither padded to the others' width nor
        attend over masked cache entries). When there are both, the batch holds the reusing rows
        first, then the new ones, each cache written once into the merged one (right-aligned, the
        gap masked).
        """
        kept = [i for i, r in enumerate(reuses) if r.row >= 0]
        new = [i for i, r in enumerate(reuses) if r.row < 0]
        if not new:
            return (*self._run_cached(rows, reuses, decode_steps), kept)
        fresh = self.run_fresh([rows[i] for i in new])
        if not kept:
            return (*fresh, new)
        cached = self._run_cached([rows[i] for i in kept], [reuses[i] for i in kept], 0)
        # kept rows only exist for full-attention caches (prefix_cache.py), so the two can stack
        return (*stack_prefills([cached, fresh], room=decode_steps), kept + new)

    def run_fresh(self, rows: list[list[int]]) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Rows run whole, without a cache; returns what :meth:`run` does."""
        chunk, mask = self._left_padded(rows, max(len(r) for r in rows))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self.prefilled_tokens += int(mask.sum())
        result = self.forward(chunk, mask, positions, None)
        return result.logits[:, -1, :].float(), self.cache_of(result), mask, positions[:, -1:] + 1

    def _run_cached(
        self, rows: list[list[int]], reuses: list[Reuse], decode_room: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        suffixes = [row[r.tokens :] for row, r in zip(rows, reuses, strict=True)]
        chunk, chunk_mask = self._left_padded(suffixes, max(len(x) for x in suffixes))
        past, old_mask = self.store.assemble(reuses, room=chunk.shape[1] + decode_room)
        start = torch.tensor([r.tokens for r in reuses], device=self.device)[:, None]
        positions = (start + chunk_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([old_mask, chunk_mask], dim=-1)
        self.prefilled_tokens += int(chunk_mask.sum())
        result = self.forward(chunk, mask, positions, past)
        return result.logits[:, -1, :].float(), self.cache_of(result), mask, positions[:, -1:] + 1

    @staticmethod
    def cache_of(result: Any) -> Any:
        """The KV cache of a forward's output (transformers 5 renamed it)."""
        return result["cache"] if "cache" in result else result["past_key_values"]


def stack_prefills(
    parts: list[tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]], room: int
) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
    """Batches of ``(logits, full-attention cache, mask, next_pos)`` one after another in one batch:
    each cache and mask right-aligned in the widest (:func:`~turngym.agents.kv.stack_rows`), with
    ``room`` free cache columns for the decode."""
    width = max(part[2].shape[1] for part in parts)
    return (
        torch.cat([part[0] for part in parts]),
        stack_rows([part[1] for part in parts], room=room),
        torch.cat([left_pad(part[2], width, -1) for part in parts]),
        torch.cat([part[3] for part in parts]),
    )
