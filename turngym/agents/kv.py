"""Room in the ``hf`` sampler's KV cache: appends that write in place instead of copying.

Layout (what :class:`~turngym.agents.hf.HFPolicy` builds): every layer holds keys and values of
shape ``[B, H, T, D]`` whose column ``t`` is one step for all rows, beside an attention mask
``[B, T]``; rows are left-padded and may have masked gaps (positions are passed explicitly, so a
masked column is as good as absent).

transformers' ``DynamicLayer`` appends a step with ``torch.cat``, which copies the whole layer
cache every token: ``O(B·T)`` memory traffic per step, quadratic in a completion's length.
:class:`RoomyLayer` keeps its columns in a buffer with room for more; appends write into the room
and the layer's ``keys``/``values`` are views of the filled part. Assigning ``keys``/``values``
(index_select, padding, merging) gives the room up, and a later append falls back to ``cat``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` over buffers ``[B, H, T + room, D]`` whose first ``used`` columns are filled."""

    def __init__(self, key_buf: torch.Tensor, value_buf: torch.Tensor, used: int) -> None:
        super().__init__()
        self._key_buf, self._value_buf, self._used = key_buf, value_buf, used
        self._keys, self._values = key_buf[:, :, :used], value_buf[:, :, :used]
        self.device = key_buf.device
        self.is_initialized = True

    @classmethod
    def around(cls, keys: torch.Tensor, values: torch.Tensor, room: int) -> RoomyLayer:
        """A copy of ``keys``/``values`` ``[B, H, T, D]`` with ``room`` free columns after them."""
        b, h, t, d = keys.shape
        key_buf = keys.new_empty((b, h, t + room, d))
        value_buf = values.new_empty((b, values.shape[1], t + room, values.shape[3]))
        key_buf[:, :, :t] = keys
        value_buf[:, :, :t] = values
        return cls(key_buf, value_buf, t)

    @property
    def room(self) -> int:
        """Columns that can still be appended in place (0 once the buffers were given up)."""
        return 0 if self._key_buf is None else self._key_buf.shape[-2] - self._used

    @property
    def keys(self) -> torch.Tensor | None:
        return self._keys

    @keys.setter
    def keys(self, value: torch.Tensor | None) -> None:
        self._keys, self._key_buf, self._value_buf = value, None, None

    @property
    def values(self) -> torch.Tensor | None:
        return self._values

    @values.setter
    def values(self, value: torch.Tensor | None) -> None:
        self._values, self._key_buf, self._value_buf = value, None, None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        kbuf, vbuf = self._key_buf, self._value_buf
        if kbuf is None or vbuf is None or n > self.room or key_states.shape[0] != kbuf.shape[0]:
            return super().update(key_states, value_states, *args, **kwargs)
        kbuf[:, :, self._used : self._used + n] = key_states
        vbuf[:, :, self._used : self._used + n] = value_states
        self._used += n
        self._keys, self._values = kbuf[:, :, : self._used], vbuf[:, :, : self._used]
        return self._keys, self._values


def plain_layers(cache: Any) -> bool:
    """Whether every layer of ``cache`` is a full-attention dynamic layer (what the sampler keeps)."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(x) in (DynamicLayer, RoomyLayer) for x in layers)


def reserve(cache: Any, room: int) -> None:
    """Make sure every layer of ``cache`` can take ``room`` more columns in place (copying a layer
    into a bigger buffer where needed); other cache kinds are left as they are."""
    if room < 1 or not plain_layers(cache):
        return
    for i, layer in enumerate(cache.layers):
        if isinstance(layer, RoomyLayer) and layer.room >= room:
            continue
        if layer.is_initialized and layer.keys is not None and layer.keys.numel():
            cache.layers[i] = RoomyLayer.around(layer.keys, layer.values, room)


def select_rows(cache: Any, index: torch.Tensor, room: int, start: int = 0) -> None:
    """Keep only the batch rows ``index`` of every layer of a full-attention ``cache``, from column
    ``start`` on (columns every kept row masks), with room for ``room`` more columns (finished rows
    leaving a running decode)."""
    for i, layer in enumerate(cache.layers):
        keys = layer.keys[:, :, start:].index_select(0, index)
        values = layer.values[:, :, start:].index_select(0, index)
        cache.layers[i] = RoomyLayer.around(keys, values, max(room, 0))


def stack_rows(caches: list[Any], room: int) -> DynamicCache:
    """The batch rows of full-attention ``caches`` one after another in one cache (``[B₁ + B₂ + …,
    H, W, D]`` per layer, ``W`` the widest; each cache's columns right-aligned, zeros in front for
    its mask to hide) with ``room`` free columns after them, written once into the new buffers."""
    width = max(cache.layers[0].keys.shape[-2] for cache in caches)
    out = DynamicCache()
    for layers in zip(*(cache.layers for cache in caches), strict=True):
        first = layers[0]
        rows = sum(layer.keys.shape[0] for layer in layers)
        kbuf = first.keys.new_zeros((rows, first.keys.shape[1], width + room, first.keys.shape[3]))
        vbuf = first.values.new_zeros((rows, first.values.shape[1], width + room, first.values.shape[3]))
        at = 0
        for layer in layers:
            n, t = layer.keys.shape[0], layer.keys.shape[-2]
            kbuf[at : at + n, :, width - t : width] = layer.keys
            vbuf[at : at + n, :, width - t : width] = layer.values
            at += n
        out.layers.append(RoomyLayer(kbuf, vbuf, width))
    return out


def left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``tensor`` widened to ``width`` along ``dim`` by zeros in front (masked cache positions)."""
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
