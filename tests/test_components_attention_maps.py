"""`return_attention=True`: the maps are those of the very model that computes the logits.

For every position variant and key/value sharing scheme: per-layer (batch, heads, q, k)
probabilities that sum to 1 over the visible keys and are 0 on masked ones; the logits are the
fused (SDPA) path's logits; and each layer's attention output is exactly `maps @ values`
pushed through the output projection, so the maps are the ones the fused path uses.
"""

from __future__ import annotations

import pytest
import torch
from variants import combinations, model_config, names

from tzoo.components import build_model

VOCAB, LENGTH = 32, 7


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(position, *, arch="decoder", attention="mha", mask=None):
    torch.manual_seed(0)
    config = model_config(arch=arch, vocab_size=VOCAB, d_model=32, layers=2, heads=4,
                          attention=attention, mask=mask, position=position, max_len=16,
                          init_std=0.3)
    return build_model(config).eval()


def _tokens(batch=2, length=LENGTH, seed=0):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def _check_probabilities(maps, visible: torch.Tensor, heads: int = 4):
    """`visible`: (batch or 1, q, k) True where a query may see a key."""
    for weights in maps:
        batch = weights.shape[0]
        assert weights.shape == (batch, heads, *visible.shape[-2:])
        assert torch.isfinite(weights).all() and (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
        assert (weights.masked_select(~visible[:, None].expand_as(weights)) == 0).all()


def _outputs_of_attention(model) -> tuple[list, list]:
    """Record every self-attention module's input and output during a forward pass."""
    records, handles = [], []
    for block in model.stack.blocks:
        def hook(module, args, output, records=records):
            records.append((module, args[0], output[0]))

        handles.append(block.self_attention.register_forward_hook(hook))
    return records, handles


@pytest.mark.parametrize("attention", names("attention"))
@pytest.mark.parametrize("position,mask", combinations("position", "mask"))
def test_decoder_only_maps_are_the_fused_paths(position, attention, mask):
    model = _model(position, attention=attention, mask=mask)
    tokens = _tokens()

    records, handles = _outputs_of_attention(model)
    with torch.no_grad():
        fused = model(tokens)
        fused_records = list(records)
        records.clear()
        logits, maps = model(tokens, return_attention=True)
    for handle in handles:
        handle.remove()

    torch.testing.assert_close(logits, fused, atol=1e-5, rtol=0)
    assert len(maps) == 2
    # who sees whom is the mask's own word (test_components_masks holds each mask to it)
    q = torch.arange(LENGTH)
    allowed = model.mask.allowed(q, q)
    visible = torch.ones(1, LENGTH, LENGTH, dtype=torch.bool) if allowed is None else allowed[0]
    _check_probabilities(maps, visible)

    # Each layer's output is out(maps @ values): the maps are what the fused path computed.
    for (module, h, out), (_, fused_h, fused_out), weights in zip(
        records, fused_records, maps, strict=True
    ):
        torch.testing.assert_close(h, fused_h, atol=1e-5, rtol=0)
        torch.testing.assert_close(out, fused_out, atol=1e-5, rtol=0)
        width = module.kv_heads * module.head_dim
        values = module.qkv(h)[..., module.heads * module.head_dim + width:]
        values = module._share(module._heads(values, module.kv_heads).transpose(1, 2))
        mixed = (weights @ values).transpose(1, 2).flatten(2)
        torch.testing.assert_close(module.out(mixed), fused_out, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "position,arch",
    [(p, arch) for arch in ("decoder", "encoder") for p in names("position", arch=arch)],
)
def test_padding_hides_keys_in_the_maps(position, arch):
    """Right padding in an encoder, left padding in a decoder (the first real token sees no
    earlier key at all, and the padded queries see nothing): maps stay finite, padded keys get
    0, and the logits match the fused path's."""
    model = _model(position, arch=arch)
    tokens = _tokens()
    real = torch.ones_like(tokens, dtype=torch.bool)
    if arch == "encoder":
        real[1, 5:] = False
    else:
        real[1, :2] = False
    with torch.no_grad():
        fused = model(tokens, padding=real)
        logits, maps = model(tokens, padding=real, return_attention=True)
    assert torch.isfinite(fused).all() and torch.isfinite(logits).all()
    torch.testing.assert_close(logits[real], fused[real], atol=1e-5, rtol=0)
    for weights in maps:
        assert (weights[1, :, :, ~real[1]] == 0).all()
        rows = weights[1, :, real[1]]  # queries at real tokens see some real key
        torch.testing.assert_close(rows.sum(-1), torch.ones_like(rows.sum(-1)))
    # ...and the explicit path's gradients are finite too (reports may backpropagate through it)
    logits, _ = model(tokens, padding=real, return_attention=True)
    logits[real].square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is None or torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("position", names("position", arch="encoder_decoder"))
def test_encoder_decoder_maps(position):
    model = _model(position, arch="encoder_decoder")
    source, target = _tokens(length=6), _tokens(length=5, seed=1)
    real = torch.ones_like(source, dtype=torch.bool)
    real[0, 4:] = False
    with torch.no_grad():
        fused = model(source, target, source_padding=real)
        logits, maps = model(source, target, source_padding=real, return_attention=True)
    torch.testing.assert_close(logits, fused, atol=1e-5, rtol=0)
    assert set(maps) == {"encoder", "decoder", "cross"}
    assert len(maps["encoder"]) == len(maps["decoder"]) == len(maps["cross"]) == 2
    q = torch.arange(5)
    _check_probabilities(maps["decoder"], (q[None, :] <= q[:, None])[None])
    _check_probabilities(maps["cross"], real[:, None, :].expand(2, 5, 6))
    for weights in maps["encoder"]:  # padded source queries are not part of the contract
        assert weights.shape == (2, 4, 6, 6)
        assert (weights[0, :, :, 4:] == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6))
