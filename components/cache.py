"""Key/value caches for generation."""

from __future__ import annotations

from torch import Tensor


class KVCache:
    """One self-attention layer's keys and values so far, in a buffer grown by doubling.

    Appending writes in place, so a decoding step costs O(1) copies of its own keys and values
    rather than re-concatenating the whole history.
    """

    def __init__(self, capacity: int = 0):
        self.capacity = capacity
        self.keys: Tensor | None = None
        self.values: Tensor | None = None
        self.length = 0

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Store (batch, kv_heads, new, head_dim) tensors; return everything stored so far."""
        needed = self.length + keys.shape[2]
        if self.keys is None or needed > self.keys.shape[2]:
            current = self.keys.shape[2] if self.keys is not None else 0
            size = max(needed, self.capacity, 2 * current)
            shape = (*keys.shape[:2], size, keys.shape[3])
            grown_k = keys.new_empty(shape)
            grown_v = values.new_empty(shape)
            if self.keys is not None:
                grown_k[:, :, : self.length] = self.keys[:, :, : self.length]
                grown_v[:, :, : self.length] = self.values[:, :, : self.length]
            self.keys, self.values = grown_k, grown_v
        self.keys[:, :, self.length : needed] = keys
        self.values[:, :, self.length : needed] = values
        self.length = needed
        return self.keys[:, :, :needed], self.values[:, :, :needed]

    def reorder(self, index: Tensor) -> None:
        """Keep the rows named by `index` (beam search reorders hypotheses every step)."""
        if self.keys is not None:
            self.keys = self.keys.index_select(0, index)
            self.values = self.values.index_select(0, index)


class StaticKV:
    """Cross-attention keys and values: computed from the encoder output once, then reused."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def reorder(self, index: Tensor) -> None:
        if self.keys is not None:
            self.keys = self.keys.index_select(0, index)
            self.values = self.values.index_select(0, index)


def reorder_caches(caches: list, index: Tensor) -> None:
    for cache in caches:
        cache.reorder(index)


def expand_rows(x: Tensor, times: int) -> Tensor:
    """Repeat each row `times` times in place order: [a, b] -> [a, a, b, b] (beams per input)."""
    return x.repeat_interleave(times, dim=0) if times > 1 else x

