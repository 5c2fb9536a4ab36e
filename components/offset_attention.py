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
`saturation` is recomputed, in row blocks sized to a memory budget. Up to a few times that
distance the band is most of the causal triangle, and dS over the triangle, block by block, gives
every gradient at once for less than the kernel's backward plus the band.

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
#: query rows per block of the learned bias's backward: more rows mean fewer, larger matmuls but
#: more pairs computed in vain (above the diagonal, or past `saturation`); 32-48 was fastest at
#: batch·heads 8-64, contexts 256-2048 (one thread, CPU time)
BAND_ROWS = 32
#: a learned bias's backward is explicit (dS over the whole triangle, every gradient from it)
#: up to EXPLICIT_REACH × (saturation + BAND_ROWS) positions, where the band is much of the
#: triangle; beyond, the kernel's backward plus the band. Measured (one thread, batch·heads 64
#: at 256, 16 at 1024): explicit 65 vs 89 ms a layer at 256, 184 vs 188 at 1024
EXPLICIT_REACH = 4
#: query rows per block of the explicit backward: 32-64 were fastest at batch·heads 16-64
EXPLICIT_ROWS = 64
#: elements of one (batch, heads, rows, keys) tensor in those backwards at most (4 MiB fp32)
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
        saturation, length = ctx.saturation, q.shape[-2]
        if table is None or not ctx.needs_input_grad[4]:
            return (*_flash_backward(q, k, v, out, lse, dout, values), None, None, None, None)
        if length <= EXPLICIT_REACH * (saturation + BAND_ROWS):
            # The band is much of the causal triangle: computing dS over the triangle once and
            # taking every gradient from it beats the kernel's backward plus the band.
            grads = _explicit_backward(q, k, v, out, lse, dout, values, table, buckets,
                                       saturation)
        else:
            grads = (*_flash_backward(q, k, v, out, lse, dout, values),
                     _table_gradient(q, k, v, out, lse, dout, values, table, buckets,
                                     saturation))
        return (*grads[:3], None, grads[3], None, None)


def _flash_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                    values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """dq, dk, dv from the kernel's backward, block by block as the forward went."""
    blocks = query_blocks(q.shape[-2], values.shape[-2])
    if len(blocks) == 1:
        return _FLASH_BACKWARD(dout, q, k, v, out, lse, 0.0, True, attn_mask=values)
    dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for s, e in blocks:
        gq, gk, gv = _FLASH_BACKWARD(
            dout[:, :, s:e], q[:, :, s:e], k[:, :, :e], v[:, :, :e], out[:, :, s:e],
            lse[:, :, s:e], 0.0, s == 0, attn_mask=_view(values, s, e),
        )
        dq[:, :, s:e] = gq
        dk[:, :, :e] += gk
        dv[:, :, :e] += gv
    return dq, dk, dv


def _augmented(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
               dout: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One column more on each side folds the row terms of the backward into its matmuls:
    [q·scale, -lse]·[k, 1] = scaled scores - lse, and [dO, -Δ]·[v, 1] = dP - Δ with
    Δ = rowsum(dO ⊙ O); then P = exp(that + bias) and dS = P ⊙ (dP - Δ) take two passes."""
    batch, heads, length, dim = q.shape
    ones = q.new_ones(batch, heads, length, 1)
    delta = (dout * out).sum(-1, keepdim=True)
    return (torch.cat((q * (1.0 / math.sqrt(dim)), -lse[..., None].to(q.dtype)), dim=-1),
            torch.cat((k, ones), dim=-1), torch.cat((dout, -delta), dim=-1),
            torch.cat((v, ones), dim=-1))


def _explicit_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                       values: Tensor, table: Tensor, buckets: Tensor,
                       saturation: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """dq, dk, dv and d table from dS over the causal triangle, EXPLICIT_ROWS queries at a
    time (fewer if batch·heads·rows·T would exceed BAND_ELEMENTS)."""
    batch, heads, length, dim = q.shape
    scale = 1.0 / math.sqrt(dim)
    q_lse, k_one, dout_delta, v_one = _augmented(q, k, v, out, lse, dout)
    dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
    grad = torch.zeros(heads, table.shape[0], device=q.device,
                       dtype=torch.promote_types(q.dtype, torch.float32))
    last = table.shape[0] - 1
    r = max(1, min(values.shape[-2], EXPLICIT_ROWS,
                   BAND_ELEMENTS // (batch * heads * length)))
    for a in range(0, length, r):
        b = min(length, a + r)
        p = torch.matmul(q_lse[:, :, a:b], k_one[:, :, :b].transpose(-2, -1))
        p = p.add_(_view(values, a, b)).exp_()
        dv[:, :, :b] += p.transpose(-2, -1) @ dout[:, :, a:b]
        ds = torch.matmul(dout_delta[:, :, a:b], v_one[:, :, :b].transpose(-2, -1)).mul_(p)
        dq[:, :, a:b] = (ds @ k[:, :, :b]).mul_(scale)
        dk[:, :, :b] += (ds.transpose(-2, -1) @ q[:, :, a:b]).mul_(scale)
        ds = ds.sum(0)  # (heads, b - a, b), summed over the batch
        j = max(0, a - saturation + 1)  # keys before j: the last bucket for every row
        grad.index_add_(1, _view(buckets, a, b, j).reshape(-1),
                        ds[:, :, j:].reshape(heads, -1).to(grad))
        grad[:, last] += ds[:, :, :j].sum((1, 2)).to(grad)
    return dq, dk, dv, grad.t().to(table.dtype)


def _table_gradient(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                    values: Tensor, table: Tensor, buckets: Tensor, saturation: int) -> Tensor:
    """d loss / d table (buckets, heads) from the band of offsets below `saturation`."""
    batch, heads, length, _ = q.shape
    q_lse, k_one, dout_delta, v_one = _augmented(q, k, v, out, lse, dout)
    grad = torch.zeros(heads, table.shape[0], device=q.device,
                       dtype=torch.promote_types(q.dtype, torch.float32))
    # rows per band block: BAND_ROWS, fewer if batch·heads·r·(r + saturation) would exceed
    # BAND_ELEMENTS, and at most the block's rows (its views need that)
    fits = (math.sqrt(saturation**2 + 4 * BAND_ELEMENTS / (batch * heads)) - saturation) / 2
    r = max(1, min(values.shape[-2], BAND_ROWS, int(fits)))
    last = table.shape[0] - 1
    for a in range(0, length, r):
        b = min(length, a + r)
        j = max(0, a - saturation + 1)  # keys before j are >= saturation away from every row
        p = torch.matmul(q_lse[:, :, a:b], k_one[:, :, j:b].transpose(-2, -1))
        p = p.add_(_view(values, a, b, j)).exp_()
        ds = torch.matmul(dout_delta[:, :, a:b], v_one[:, :, j:b].transpose(-2, -1))
        ds = ds.mul_(p).sum(0)  # (heads, b - a, b - j), summed over the batch
        grad.index_add_(1, _view(buckets, a, b, j).reshape(-1), ds.reshape(heads, -1).to(grad))
        # every row of dS sums to zero: the pairs left of the band (last bucket) hold minus the band
        grad[:, last] -= ds.sum((1, 2)).to(grad)
    return grad.t().to(table.dtype)
