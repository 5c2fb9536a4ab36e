"""Multi-head attention with shared key/value heads: MHA, GQA, MQA.

All three are one module with a different number of key/value heads. The fast path is
`torch.nn.functional.scaled_dot_product_attention`; when attention probabilities are asked for
(reports draw them), the same weights are used on an explicit softmax path, so the maps are
those of the very model that was trained, for every position variant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cache import KVCache, StaticKV
from .errors import ConfigError
from .families import ATTENTION
from .offset_attention import CausalOffsetBias
from .positions import PositionEncoding

# `enable_gqa` arrived in torch 2.5; on older versions key/value heads are repeated instead.
_SDPA_HAS_GQA = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")


class Attention(nn.Module):
    """Scaled dot-product attention over `heads` query heads and `kv_heads` key/value heads."""

    def __init__(self, d_model: int, heads: int, kv_heads: int | None = None,
                 dropout: float = 0.0, bias: bool = True, cross: bool = False):
        super().__init__()
        kv_heads = heads if kv_heads is None else int(kv_heads)
        if d_model % heads:
            raise ConfigError(
                f"d_model ({d_model}) must be divisible by heads ({heads})", key="model.heads"
            )
        if kv_heads < 1 or heads % kv_heads:
            raise ConfigError(
                f"kv_heads ({kv_heads}) must divide heads ({heads}); allowed: "
                f"{', '.join(str(n) for n in range(1, heads + 1) if heads % n == 0)}",
                key="model.attention.kv_heads",
            )
        self.heads, self.kv_heads = heads, kv_heads
        self.head_dim = d_model // heads
        self.dropout = dropout
        self.cross = cross
        q_width, kv_width = heads * self.head_dim, kv_heads * self.head_dim
        if cross:
            self.query = nn.Linear(d_model, q_width, bias=bias)
            self.key_value = nn.Linear(d_model, 2 * kv_width, bias=bias)
        else:
            self.qkv = nn.Linear(d_model, q_width + 2 * kv_width, bias=bias)
        self.out = nn.Linear(q_width, d_model, bias=bias)
        self.out.is_residual_projection = True  # depth-scaled init, see model.py

    def _heads(self, x: Tensor, n: int) -> Tensor:
        """(batch, length, n·head_dim) -> (batch, length, n, head_dim), a view."""
        batch, length, _ = x.shape
        return x.view(batch, length, n, self.head_dim)

    def forward(
        self,
        x: Tensor,
        *,
        memory: Tensor | None = None,
        attn_mask: Tensor | CausalOffsetBias | None = None,
        is_causal: bool = False,
        position: PositionEncoding | None = None,
        positions: Tensor | None = None,
        cache: KVCache | StaticKV | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        kv_width = self.kv_heads * self.head_dim
        # Heads are split as views in (batch, length, heads, head_dim) layout, rotated there
        # (contiguous channel pairs), then transposed to SDPA's (batch, heads, length, head_dim).
        if self.cross:
            q = self._heads(self.query(x), self.heads).transpose(1, 2)
            if isinstance(cache, StaticKV) and cache.keys is not None:
                k, v = cache.keys, cache.values
            else:
                k, v = self.key_value(memory).split(kv_width, dim=-1)
                k = self._heads(k, self.kv_heads).transpose(1, 2)
                v = self._heads(v, self.kv_heads).transpose(1, 2)
                if isinstance(cache, StaticKV):
                    cache.keys, cache.values = k, v
        else:
            q, k, v = self.qkv(x).split((self.heads * self.head_dim, kv_width, kv_width), dim=-1)
            q, k, v = self._heads(q, self.heads), self._heads(k, self.kv_heads), self._heads(
                v, self.kv_heads
            )
            if position is not None and position.uses_rotate:
                q, k = position.rotate(q, k, positions)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            if isinstance(cache, KVCache):
                k, v = cache.append(k, v)

        if need_weights:
            out, weights = self._explicit(q, k, v, attn_mask, is_causal)
        else:
            out, weights = self._fused(q, k, v, attn_mask, is_causal), None
        batch, _, length, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(batch, length, -1)), weights

    def _fused(self, q: Tensor, k: Tensor, v: Tensor,
               attn_mask: Tensor | CausalOffsetBias | None, is_causal: bool) -> Tensor:
        dropout = self.dropout if self.training else 0.0
        if isinstance(attn_mask, CausalOffsetBias):
            if not dropout and attn_mask.fused(q):
                return attn_mask.attend(q, self._share(k), self._share(v))
            attn_mask = attn_mask.dense()
        if self.kv_heads != self.heads:
            if _SDPA_HAS_GQA:
                return F.scaled_dot_product_attention(
                    q, k, v, attn_mask=attn_mask, dropout_p=dropout, is_causal=is_causal,
                    enable_gqa=True,
                )
            k, v = self._share(k), self._share(v)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout, is_causal=is_causal
        )

    def _share(self, x: Tensor) -> Tensor:
        """Repeat each key/value head for the query heads of its group."""
        group = self.heads // self.kv_heads
        return x.repeat_interleave(group, dim=1) if group > 1 else x

    def _explicit(self, q: Tensor, k: Tensor, v: Tensor,
                  attn_mask: Tensor | CausalOffsetBias | None,
                  is_causal: bool) -> tuple[Tensor, Tensor]:
        k, v = self._share(k), self._share(v)
        if isinstance(attn_mask, CausalOffsetBias):
            attn_mask = attn_mask.dense()
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        if is_causal:
            q_len, k_len = scores.shape[-2:]
            scores = scores.masked_fill(
                torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).triu(1), float("-inf")
            )
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        # A query that may see no key at all (a left-padded position) attends to nothing, as in
        # SDPA, instead of spreading NaN to every position (and gradient) through its values.
        blocked = scores.isneginf().all(dim=-1, keepdim=True)
        weights = scores.masked_fill(blocked, 0.0).softmax(dim=-1).masked_fill(blocked, 0.0)
        dropped = F.dropout(weights, self.dropout, self.training) if self.dropout else weights
        return dropped @ v, weights


@ATTENTION.register("mha")
class MultiHeadAttention(Attention):
    """Multi-head attention: every query head has its own keys and values (Vaswani et al. 2017,
    "Attention Is All You Need", section 3.2.2)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, bias: bool = True,
                 cross: bool = False):
        super().__init__(d_model, heads, heads, dropout, bias, cross)


@ATTENTION.register("gqa")
class GroupedQueryAttention(Attention):
    """Grouped-query attention: `kv_heads` key/value heads, each shared by a group of query heads
    (Ainslie et al. 2023, "GQA: Training Generalized Multi-Query Transformer Models")."""

    def __init__(self, d_model: int, heads: int, kv_heads: int = 2, dropout: float = 0.0,
                 bias: bool = True, cross: bool = False):
        super().__init__(d_model, heads, kv_heads, dropout, bias, cross)

    @classmethod
    def example_arguments(cls, config) -> dict:
        """Two query heads per key/value head (one key/value head for an odd head count, which
        the default of 2 would not divide)."""
        return {"kv_heads": config.heads // 2 if config.heads % 2 == 0 else 1}


@ATTENTION.register("mqa")
class MultiQueryAttention(Attention):
    """Multi-query attention: one key/value head shared by all query heads (Shazeer 2019, "Fast
    Transformer Decoding: One Write-Head is All You Need")."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, bias: bool = True,
                 cross: bool = False):
        super().__init__(d_model, heads, 1, dropout, bias, cross)
