"""Causal attention with a bias that depends only on the query–key offset (ALiBi, T5's relative
bias), without a (heads, T, T) mask and without skipping nothing.

Why. `scaled_dot_product_attention` refuses a mask together with `is_causal`, so a biased causal
pass used to hand it one (heads, T, T) float tensor (the bias with -inf above the diagonal), built
every forward. With such a mask SDPA cannot skip the masked half of the scores (twice a causal
pass's attention work), the mask is heads·T² floats, and a learned bias needs a gradient, which
sends SDPA to its math path: every layer keeps (batch, heads, T, T) probabilities for backward.
FlexAttention would express the bias as a `score_mod`, but has no backward on the CPU (torch 2.13:
"FlexAttention does not support backward on CPU").

How. Both biases depend on q − k only, so the bias of the *last* `rows` queries against every key,
B (1, heads, rows, T), holds the bias of every block of at most `rows` consecutive queries as a
view: queries [s, e) see keys [0, e) through B[..., rows−(e−s):, T−e:]. Queries are taken in
blocks of `rows`, one call of PyTorch's CPU flash-attention kernel each (the first block is square
and uses the kernel's causal skipping), so nothing of size heads·T² or batch·heads·T² exists.

A learned bias (T5: one scalar per head and bucket of offsets) needs d table[b] = Σ over the pairs
in bucket b of dS, dS = P ⊙ (dP − Δ) with Δ = rowsum(dO ⊙ O) (the flash kernel computes dS but
does not return it). Every offset at or beyond `saturation` falls into the last bucket, and every
row of dS sums to zero, so the last bucket's share is minus the rest: only a band of offsets below
`saturation` is recomputed, in row blocks sized to a memory budget.

The kernel is CPU-only and private to PyTorch (`aten._scaled_dot_product_flash_attention_for_cpu`
and its backward, there since torch 2.3); elsewhere (another device, dropout in training, an older
torch) the model falls back to the dense mask, which `CausalOffsetBias.dense` builds as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_FLASH_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward",
                          None)
try:  # the mask argument arrived in torch 2.3
    _HAS_KERNEL = (_FLASH is not None and _FLASH_BACKWARD is not None
                   and "attn_mask" in str(_FLASH.default._schema))
except (AttributeError, RuntimeError):
    _HAS_KERNEL = False

#: queries per kernel call: the bias block is heads × ROWS × T; every block after the first
#: also computes its own ROWS²/2 masked pairs (the kernel cannot skip them without is_causal)
ROWS = 256
#: elements of one (batch, heads, rows, band) tensor in the learned bias's backward (4 MiB fp32)
BAND_ELEMENTS = 1 << 20


@dataclass
class OffsetBias:
    """What a position variant gives a causal pass of `length` positions: the bias of the last
    `rows` queries against every key, -inf above the diagonal (no gradient), and, for a learned
    bias, the table it is read from and the bucket of each pair."""

    values: Tensor  # (1, heads, rows, length)
    table: Tensor | None = None  # (buckets, heads): the learned parameter
    buckets: Tensor | None = None  # (rows, length): the table row of each pair of `values`
    saturation: int = 0  # offsets >= this all read the table's last row


@dataclass
class CausalOffsetBias:
    """The attention plan of a causal, same-span pass whose position bias depends only on the
    offset: every layer of the pass shares it. `dense()` is the (1, heads, T, T) additive mask of
    the general path, built on first use (attention maps, fallbacks) and then shared too."""

    bias: OffsetBias
    make_dense: Callable[[], Tensor]
    _dense: Tensor | None = field(default=None, repr=False)

    def dense(self) -> Tensor:
        if self._dense is None:
            self._dense = self.make_dense()
        return self._dense

    def fused(self, q: Tensor) -> bool:
        """Whether `attend` runs on the flash kernel for these queries."""
        return _HAS_KERNEL and q.device.type == "cpu" and self.bias.values.dtype == q.dtype

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention of (batch, heads, T, head_dim) queries, keys and values (dropout-free)."""
        b = self.bias
        if b.table is None:
            return _OffsetAttention.apply(q, k, v, b.values, None, None, 0)
        return _OffsetAttention.apply(q, k, v, b.values, b.table, b.buckets, b.saturation)


def query_blocks(length: int, rows: int) -> list[tuple[int, int]]:
    """[s, e) blocks of at most `rows` queries, the short one first (so the last is full)."""
    first = length - (math.ceil(length / rows) - 1) * rows
    return [(0, first)] + [(e - rows, e) for e in range(first + rows, length + 1, rows)]


def _view(block: Tensor, start: int, stop: int, first_key: int = 0) -> Tensor:
    """The bias of queries [start, stop) against keys [first_key, stop), a view of `block`."""
    rows, length = block.shape[-2:]
    return block[..., rows - (stop - start):, length - stop + first_key:]


class _OffsetAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, values, table, buckets, saturation):
        length, rows = q.shape[-2], values.shape[-2]
        blocks = query_blocks(length, rows)
        if len(blocks) == 1:
            out, lse = _FLASH(q, k, v, 0.0, True, attn_mask=values)
        else:
            batch, heads, _, dim = q.shape
            # (batch, T, heads, dim) memory, as the kernel writes and the model reads it back
            out = q.new_empty(batch, length, heads, dim).transpose(1, 2)
            lse = q.new_empty(batch, heads, length)
            for s, e in blocks:
                out[:, :, s:e], lse[:, :, s:e] = _FLASH(
                    q[:, :, s:e], k[:, :, :e], v[:, :, :e], 0.0, s == 0,
                    attn_mask=_view(values, s, e),
                )
        ctx.save_for_backward(q, k, v, out, lse, values, table, buckets)
        ctx.saturation = saturation
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, values, table, buckets = ctx.saved_tensors
        length, rows = q.shape[-2], values.shape[-2]
        blocks = query_blocks(length, rows)
        if len(blocks) == 1:
            dq, dk, dv = _FLASH_BACKWARD(dout, q, k, v, out, lse, 0.0, True, attn_mask=values)
        else:
            dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
            for s, e in blocks:
                gq, gk, gv = _FLASH_BACKWARD(
                    dout[:, :, s:e], q[:, :, s:e], k[:, :, :e], v[:, :, :e], out[:, :, s:e],
                    lse[:, :, s:e], 0.0, s == 0, attn_mask=_view(values, s, e),
                )
                dq[:, :, s:e] = gq
                dk[:, :, :e] += gk
                dv[:, :, :e] += gv
        dtable = None
        if table is not None and ctx.needs_input_grad[4]:
            dtable = _table_gradient(q, k, v, out, lse, dout, values, table, buckets,
                                     ctx.saturation)
        return dq, dk, dv, None, dtable, None, None


def _table_gradient(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                    values: Tensor, table: Tensor, buckets: Tensor, saturation: int) -> Tensor:
    """d loss / d table (buckets, heads) from the band of offsets below `saturation`."""
    batch, heads, length, dim = q.shape
    rows = values.shape[-2]
    scale = 1.0 / math.sqrt(dim)
    delta = (dout * out).sum(-1, keepdim=True)  # Δ = rowsum(dO ⊙ O), (batch, heads, T, 1)
    grad = torch.zeros(heads, table.shape[0], device=q.device,
                       dtype=torch.promote_types(q.dtype, torch.float32))
    # rows per band block: batch·heads·r·(r + saturation) elements at most (and <= rows)
    r = max(1, min(rows, int((math.sqrt(saturation**2 + 4 * BAND_ELEMENTS / (batch * heads))
                              - saturation) / 2)))
    last = table.shape[0] - 1
    for a in range(0, length, r):
        b = min(length, a + r)
        j = max(0, a - saturation + 1)  # keys before j are >= saturation away from every row
        scores = torch.matmul(q[:, :, a:b], k[:, :, j:b].transpose(-2, -1))
        p = scores.mul_(scale).add_(_view(values, a, b, j)).sub_(lse[:, :, a:b, None]).exp_()
        ds = torch.matmul(dout[:, :, a:b], v[:, :, j:b].transpose(-2, -1))
        ds = ds.sub_(delta[:, :, a:b]).mul_(p).sum(0)  # (heads, b - a, b - j)
        grad.index_add_(1, _view(buckets, a, b, j).reshape(-1), ds.reshape(heads, -1).to(grad))
        # every row of dS sums to zero: the pairs left of the band (last bucket) hold minus the band
        grad[:, last] -= ds.sum((1, 2)).to(grad)
    return grad.t().to(table.dtype)
