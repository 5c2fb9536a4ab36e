"""Causal attention with an offset bias (ALiBi, T5's relative bias) through query blocks on the
CPU flash kernel (components/offset_attention.py): the same numbers as the dense mask it
replaces, gradients of the learned table included, and no (heads, T, T) tensor anywhere."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from variants import model_config, names

from tzoo.components import build_model, offset_attention
from tzoo.components import model as model_module
from tzoo.components.offset_attention import CausalOffsetBias, query_blocks
from tzoo.components.positions import POSITIONS, relative_buckets

pytestmark = pytest.mark.skipif(not offset_attention._HAS_KERNEL,
                                reason="this torch has no CPU flash kernel with a mask")


def _model(position, **overrides):
    torch.manual_seed(0)
    values = dict(arch="decoder", vocab_size=17, d_model=16, layers=2, heads=4,
                  position=position, max_len=64)
    return build_model(model_config(**{**values, **overrides}))


def _offers_offset_bias(name: str) -> bool:
    position = _model(name).position
    return position.offset_bias(4, 4, torch.float32, torch.device("cpu")) is not None


#: every registered position variant whose bias depends only on the offset q - k
OFFSET_VARIANTS = [name for name in names("position") if _offers_offset_bias(name)]
#: ... and of those, the ones with nothing learned in the bias
FIXED_OFFSET_VARIANTS = [name for name in OFFSET_VARIANTS
                         if not list(_model(name).position.parameters())]


def _position(spec, heads: int = 3, dtype=torch.float64):
    """A causal decoder's position variant, its learned values (if any) far from their
    zero-mean init, so that every bucket matters."""
    position = _model(spec, heads=heads, d_model=4 * heads).position.to(dtype)
    with torch.no_grad():
        for parameter in position.parameters():
            parameter.normal_(0.0, 1.0)
    return position


def _dense(position, length: int) -> torch.Tensor:
    positions = torch.arange(length)
    future = positions[None, :] > positions[:, None]
    return position.bias(positions, positions).masked_fill(future, float("-inf"))[None]


@pytest.mark.parametrize("length,rows", [(10, 4), (8, 4), (3, 4), (1, 1), (257, 256)])
def test_query_blocks_cover_the_sequence_in_order_with_the_short_block_first(length, rows):
    blocks = query_blocks(length, rows)
    assert blocks[0][0] == 0 and blocks[-1][1] == length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert all(0 < e - s <= rows for s, e in blocks)
    assert all(e - s == rows for s, e in blocks[1:])


SHAPES = [(23, 23, 1 << 20), (23, 6, 1 << 20), (40, 16, 300)]


@pytest.mark.parametrize("reach", [0, 100])
@pytest.mark.parametrize("name", OFFSET_VARIANTS)
@pytest.mark.parametrize("length,rows,band", SHAPES)
def test_blocks_give_the_dense_masks_outputs_and_gradients(name, reach, length, rows, band,
                                                          monkeypatch):
    """float64, several query blocks and band blocks: outputs and the gradients of queries,
    keys, values and any learned bias equal SDPA's with the (heads, T, T) mask, through the
    kernel's backward plus the band (reach 0) and through the explicit backward (reach 100)."""
    _check_against_dense(_position(name), length, rows, band, reach, monkeypatch)


@pytest.mark.parametrize("reach", [0, 100])
@pytest.mark.parametrize("length,rows,band", SHAPES)
def test_a_short_saturation_distance_takes_keys_left_of_the_band(length, rows, band, reach,
                                                                 monkeypatch):
    """T5's buckets saturating after 12 positions: most pairs lie left of the band, whose
    gradient comes from rows of dS summing to zero."""
    spec = {"name": "relative", "num_buckets": 8, "max_distance": 12}
    position = _position(spec)
    assert position.saturation <= 12
    _check_against_dense(position, length, rows, band, reach, monkeypatch)


def _check_against_dense(position, length, rows, band, reach, monkeypatch):
    monkeypatch.setattr(offset_attention, "BAND_ELEMENTS", band)
    monkeypatch.setattr(offset_attention, "EXPLICIT_ROWS", 5)
    monkeypatch.setattr(offset_attention, "EXPLICIT_REACH", reach)
    torch.manual_seed(0)
    batch, heads, dim = 2, 3, 4
    q, k, v = (torch.randn(batch, heads, length, dim, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=_dense(position, length))
    plan = CausalOffsetBias(position.offset_bias(length, rows, torch.float64, q.device),
                            lambda: None)
    assert plan.fused(q)
    out = plan.attend(q, k, v)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)
    grad = torch.randn_like(out)
    inputs = [q, k, v, *position.parameters()]
    expected = torch.autograd.grad(reference, inputs, grad)
    got = torch.autograd.grad(out, inputs, grad)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-11)


def test_relative_saturation_is_where_the_last_bucket_starts():
    position = _position({"name": "relative", "num_buckets": 8, "max_distance": 12})
    back = relative_buckets(-torch.arange(40), bidirectional=False, num_buckets=8,
                            max_distance=12)
    last = 7
    assert (back[position.saturation:] == last).all()
    assert back[position.saturation - 1] < last


def test_alibi_builds_its_block_once_per_length():
    alibi = POSITIONS.build("alibi", heads=4)
    first = alibi.offset_bias(64, 16, torch.float32, torch.device("cpu")).values
    assert alibi.offset_bias(64, 16, torch.float32, torch.device("cpu")).values is first
    assert alibi.offset_bias(65, 16, torch.float32, torch.device("cpu")).values.shape == (
        1, 4, 16, 65)


def _logits_and_grads(model, tokens):
    model.zero_grad()
    logits = model(tokens)
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1)).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("attention", names("attention"))
@pytest.mark.parametrize("position", OFFSET_VARIANTS)
def test_the_model_matches_its_dense_path(position, attention, monkeypatch):
    """Whole decoders, several query blocks (rows 8, length 30): the fused path against the
    dense mask the model uses where the kernel is unavailable, for every attention variant."""
    monkeypatch.setattr(model_module, "OFFSET_ROWS", 8)
    model = _model(position, attention=attention)
    tokens = torch.randint(0, 17, (3, 30))
    fused = _logits_and_grads(model, tokens)
    monkeypatch.setattr(offset_attention, "_HAS_KERNEL", False)
    dense = _logits_and_grads(model, tokens)
    torch.testing.assert_close(fused[0], dense[0], rtol=0, atol=1e-5)
    for name, grad in dense[1].items():
        torch.testing.assert_close(fused[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("position", FIXED_OFFSET_VARIANTS)
def test_a_fixed_bias_within_one_block_is_the_dense_mask_bit_for_bit(position, monkeypatch):
    """One block (T <= rows): the kernel sees the dense path's very mask, with causal skipping
    of pairs that the mask sets to -inf anyway, so ALiBi's numbers do not change at all."""
    model = _model(position)
    tokens = torch.randint(0, 17, (3, 30))
    fused = _logits_and_grads(model, tokens)
    monkeypatch.setattr(offset_attention, "_HAS_KERNEL", False)
    dense = _logits_and_grads(model, tokens)
    assert torch.equal(fused[0], dense[0])
    assert all(torch.equal(fused[1][n], g) for n, g in dense[1].items())


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("position", OFFSET_VARIANTS)
def test_a_training_step_materialises_nothing_quadratic(position, monkeypatch):
    """Length 64 with blocks of 8 rows: no tensor of heads·T² elements is ever created, forward
    or backward (the dense path's mask is one; its math path makes batch·heads·T²)."""
    monkeypatch.setattr(model_module, "OFFSET_ROWS", 8)
    monkeypatch.setattr(offset_attention, "BAND_ELEMENTS", 2048)
    model = _model(position, d_model=8, heads=4, layers=1, vocab_size=5)
    tokens = torch.randint(0, 5, (1, 64))
    heads_t2 = 4 * 64 * 64
    with _LargestTensor() as probe:
        _logits_and_grads(model, tokens)
    assert probe.largest < heads_t2 // 2, probe.largest
    monkeypatch.setattr(offset_attention, "_HAS_KERNEL", False)
    with _LargestTensor() as probe:
        _logits_and_grads(model, tokens)
    assert probe.largest >= heads_t2  # the probe sees what the dense path builds


@pytest.mark.parametrize("position", OFFSET_VARIANTS)
def test_dropout_in_training_and_attention_maps_take_the_dense_mask(position):
    model = _model(position, dropout=0.1)
    tokens = torch.randint(0, 17, (2, 12))
    model.train()
    assert torch.isfinite(model(tokens)).all()
    model.eval()
    logits, maps = model(tokens, return_attention=True)
    torch.testing.assert_close(logits, model(tokens), rtol=0, atol=1e-5)
    assert maps[0].shape == (2, 4, 12, 12)
    assert torch.all(maps[0].triu(1) == 0)
