"""The ``hf`` sampler's prefix cache, kept per row, and the length groups a call is split into.

After a ``generate`` call every row's keys and values are kept, only the columns the row attends
to and in order, with the tokens they encode (the prompt and all but the last sampled token: the
last one was never fed). A prompt of the next call reuses one kept row:

* ``extend``: the longest kept row whose tokens the prompt extends, all of it (the agent loop's
  next turn);
* ``longest``: the kept row sharing the prompt's longest prefix, up to all of it and at most all
  but the prompt's last token (one token must run to give logits), e.g. an ARPO copy re-sampling
  its parent's last prompt.

Within a call, prompts new to the store that start alike share their head: :func:`shared_heads`
finds them, the head is run once and added to the store for the call, and each prompt reuses it
(``G`` copies of a GRPO group's prompt cost one prompt's prefill, not ``G``).

Kept per row, the rows of one call can be regrouped freely in the next: :func:`length_groups`
splits a call into groups of similar length so a short row is never padded to a long row's width
(decode reads every cached column of every row at each step, so the padding would cost as much
memory traffic as real tokens). The store holds the last call's rows only, and only while the
weights are those they were computed with (the caller's stamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

from turngym.agents.kv import RoomyLayer


@dataclass(frozen=True)
class CachedRow:
    """One row's kept cache: ``tokens`` and per layer its keys and values ``[H, len(tokens), D]``."""

    tokens: tuple[int, ...]
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]


@dataclass(frozen=True)
class Reuse:
    """Row ``row`` of the store gives a prompt its first ``tokens`` tokens (``row`` is -1: none)."""

    row: int
    tokens: int


NO_REUSE = Reuse(-1, 0)


class PrefixStore:
    """The last call's rows (see the module doc); ``stamp`` identifies the weights they came from."""

    def __init__(self) -> None:
        self.rows: list[CachedRow] = []
        self.stamp: Any = None

    def clear(self) -> None:
        self.rows, self.stamp = [], None

    def put(self, rows: list[CachedRow], stamp: Any) -> None:
        self.rows, self.stamp = rows, stamp

    def add(self, rows: Sequence[CachedRow]) -> int:
        """Append ``rows`` for the running call (shared heads); returns the index of the first."""
        start = len(self.rows)
        self.rows = [*self.rows, *rows]
        return start

    def match(self, prompts: Sequence[Sequence[int]], mode: str, stamp: Any) -> list[Reuse]:
        """What each prompt reuses (``NO_REUSE`` for all when the weights changed)."""
        if not self.rows or stamp != self.stamp:
            return [NO_REUSE] * len(prompts)
        if mode == "extend":  # the longest kept row the prompt extends (a whole row beats a shared head)
            out = []
            for prompt in prompts:
                hits = [
                    (len(row.tokens), j)
                    for j, row in enumerate(self.rows)
                    if len(prompt) > len(row.tokens) and tuple(prompt[: len(row.tokens)]) == row.tokens
                ]
                out.append(Reuse(max(hits)[1], max(hits)[0]) if hits else NO_REUSE)
            return out
        picks, keep = shared_prefixes(prompts, [row.tokens for row in self.rows])
        return [Reuse(j, n) if n >= 1 else NO_REUSE for j, n in zip(picks, keep, strict=True)]

    def assemble(self, reuses: Sequence[Reuse], room: int) -> tuple[Any, torch.Tensor]:
        """A batch cache of the reused prefixes, rows right-aligned (left-padded) in a width of the
        longest, with ``room`` more columns reserved per layer for appends; and its mask ``[B, W]``."""
        width = max(r.tokens for r in reuses)
        mask = torch.zeros((len(reuses), width), dtype=torch.long)
        for b, r in enumerate(reuses):
            mask[b, width - r.tokens :] = 1
        cache = DynamicCache()
        for layer in range(len(self.rows[reuses[0].row].layers)):
            keys0, values0 = self.rows[reuses[0].row].layers[layer]
            kbuf = keys0.new_zeros((len(reuses), keys0.shape[0], width + room, keys0.shape[2]))
            vbuf = values0.new_zeros((len(reuses), values0.shape[0], width + room, values0.shape[2]))
            for b, r in enumerate(reuses):
                keys, values = self.rows[r.row].layers[layer]
                kbuf[b, :, width - r.tokens : width] = keys[:, : r.tokens]
                vbuf[b, :, width - r.tokens : width] = values[:, : r.tokens]
            cache.layers.append(RoomyLayer(kbuf, vbuf, width))
        return cache, mask.to(keys0.device)


def keep_rows(
    cache: Any, mask: torch.Tensor, fed: Sequence[Sequence[int]], at: Sequence[int] | None = None
) -> list[CachedRow | None]:
    """Batch row ``at[k]`` (default ``k``) of a cache as a :class:`CachedRow` of the tokens
    ``fed[k]`` (its attended columns, in order); None where the attended column count is not
    ``len(fed[k])``."""
    out: list[CachedRow | None] = []
    for b, tokens in zip(range(len(fed)) if at is None else at, fed, strict=True):
        cols = mask[b].nonzero().squeeze(1)
        if len(cols) != len(tokens):
            out.append(None)
            continue
        layers = tuple((layer.keys[b][:, cols], layer.values[b][:, cols]) for layer in cache.layers)
        out.append(CachedRow(tuple(tokens), layers))
    return out


def shared_heads(rows: Sequence[Sequence[int]], *, min_shared: int = 16) -> list[tuple[list[int], int]]:
    """Clusters of rows that start with the same ``n >= min_shared`` tokens: ``(indices, n)`` each.

    Rows are sorted (lexicographically) and a row joins its predecessor's cluster while the prefix
    common to the whole cluster stays at least ``min_shared`` long and at least half of what the
    cluster shared before (so the G copies of a GRPO group's prompt share all of it, not only the
    system prompt every task has); ``n`` is also capped at the shortest member's length minus one
    (a row must run one token of its own to give logits). Clusters of one row are left out.
    Example (``min_shared=2``): ``[[1, 2, 3, 4, 5, 6], [9, 9], [1, 2, 3, 4, 5, 7, 8], [1, 2, 8]]``
    → ``[([0, 2], 5)]``: rows 0 and 2 share 5 tokens; row 3 shares 2 of them, under half, and
    ``[9, 9]`` shares nothing (clusters of one are left out).
    """
    order = sorted(range(len(rows)), key=lambda i: list(rows[i]))
    clusters: list[tuple[list[int], int]] = []
    members: list[int] = []
    head = 0

    def close() -> None:
        n = min([head, *(len(rows[i]) - 1 for i in members)]) if len(members) > 1 else 0
        if n >= min_shared:
            clusters.append((sorted(members), n))

    for i in order:
        if members:
            common = _common_prefix(rows[members[-1]], rows[i])
            joined = min(head, common) if len(members) > 1 else common
            if joined >= min_shared and (len(members) == 1 or 2 * joined >= head):
                members.append(i)
                head = joined
                continue
            close()
        members, head = [i], 0
    if members:
        close()
    return clusters


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if len(diff) else n


def length_groups(lengths: Sequence[int], *, ratio: float = 0.5, min_gap: int = 64) -> list[list[int]]:
    """Indices of ``lengths`` split into groups of similar length, longest first.

    Rows are taken longest first; a row opens a new group when it is shorter than ``ratio`` times
    the current group's longest row and at least ``min_gap`` tokens shorter (a gap that small is
    cheaper to pad than to run as another forward). Within a group, indices keep their order.
    Example: lengths ``[1000, 120, 900, 100, 70]`` → ``[[0, 2], [1, 3, 4]]``.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    top = 0
    for i in order:
        n = lengths[i]
        if not groups or (n < ratio * top and top - n >= min_gap):
            groups.append([])
            top = n
        groups[-1].append(i)
    return [sorted(g) for g in groups]


def shared_prefixes(
    rows: Sequence[Sequence[int]], kept: Sequence[Sequence[int]]
) -> tuple[list[int], list[int]]:
    """For each row, the kept sequence to reuse and how many of its tokens: the longest common
    prefix with any of ``kept``, capped at ``len(row) - 1``. Example: rows ``[[1, 2, 3, 4], [1, 2]]``,
    kept ``[[1, 2, 3], [7]]`` → picks ``[0, 0]``, keep ``[3, 1]``."""
    width = max(len(f) for f in kept)
    table = np.full((len(kept), width), -1, dtype=np.int64)
    for j, f in enumerate(kept):
        table[j, : len(f)] = f
    picks, keep = [], []
    for row in rows:
        n = min(len(row), width)
        same = table[:, :n] == np.asarray(row[:n], dtype=np.int64)
        common = np.where(same.all(axis=1), n, same.argmin(axis=1))
        j = int(common.argmax())
        picks.append(j)
        keep.append(int(min(common[j], len(row) - 1)))
    return picks, keep
