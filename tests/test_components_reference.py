"""Reference equivalence: a zoo block with PyTorch's weights computes PyTorch's layer.

`torch.nn.TransformerEncoderLayer` / `TransformerDecoderLayer` are the original Transformer
(post-norm, `norm_first=False`) and the pre-norm variant (`norm_first=True`). A zoo `Block` built
from the matching `ModelConfig` (layernorm, relu/gelu feed-forward, position 'none', dropout 0),
with the reference weights copied in, must give the same outputs to 1e-5 in eval mode.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tzoo.components import ModelConfig
from tzoo.components.families import MASKS, POSITIONS
from tzoo.components.model import Block, attention_plan

D_MODEL, HEADS, FEEDFORWARD = 16, 4, 32
TOLERANCE = 1e-5


def _config(arch: str, placement: str, activation: str, mask: str) -> ModelConfig:
    return ModelConfig(
        arch=arch, vocab_size=8, d_model=D_MODEL, heads=HEADS, layers=1, position="none",
        norm="layernorm", placement=placement, residual="add", ffn=activation,
        ffn_mult=FEEDFORWARD / D_MODEL, dropout=0.0, bias=True, mask=mask,
    )


def _copy_common(block: Block, reference: nn.Module) -> None:
    """Self-attention and feed-forward weights (names shared by both reference layers)."""
    attention = block.self_attention
    attention.qkv.weight.copy_(reference.self_attn.in_proj_weight)  # rows [q; k; v] in both
    attention.qkv.bias.copy_(reference.self_attn.in_proj_bias)
    attention.out.weight.copy_(reference.self_attn.out_proj.weight)
    attention.out.bias.copy_(reference.self_attn.out_proj.bias)
    block.ffn.up.weight.copy_(reference.linear1.weight)
    block.ffn.up.bias.copy_(reference.linear1.bias)
    block.ffn.down.weight.copy_(reference.linear2.weight)
    block.ffn.down.bias.copy_(reference.linear2.bias)
    block.self_attention_sublayer.norm.load_state_dict(reference.norm1.state_dict())


def _copy_decoder(block: Block, reference: nn.TransformerDecoderLayer) -> None:
    _copy_common(block, reference)
    cross, theirs = block.cross_attention, reference.multihead_attn
    cross.query.weight.copy_(theirs.in_proj_weight[:D_MODEL])
    cross.query.bias.copy_(theirs.in_proj_bias[:D_MODEL])
    cross.key_value.weight.copy_(theirs.in_proj_weight[D_MODEL:])  # rows [k; v]
    cross.key_value.bias.copy_(theirs.in_proj_bias[D_MODEL:])
    cross.out.weight.copy_(theirs.out_proj.weight)
    cross.out.bias.copy_(theirs.out_proj.bias)
    block.cross_attention_sublayer.norm.load_state_dict(reference.norm2.state_dict())
    block.ffn_sublayer.norm.load_state_dict(reference.norm3.state_dict())


def _randomise(module: nn.Module) -> None:
    """Non-trivial norm gains and biases too, so that a misplaced norm cannot go unnoticed."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.3)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("with_padding", [False, True])
def test_encoder_block_matches_transformer_encoder_layer(placement, activation, with_padding):
    torch.manual_seed(0)
    reference = nn.TransformerEncoderLayer(
        D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, activation=activation, batch_first=True,
        norm_first=placement == "pre",
    )
    _randomise(reference)
    reference.eval()
    block = Block(_config("encoder", placement, activation, "bidirectional")).eval()
    with torch.no_grad():
        _copy_common(block, reference)
        block.ffn_sublayer.norm.load_state_dict(reference.norm2.state_dict())

    batch, length = 3, 7
    x = torch.randn(batch, length, D_MODEL)
    real = torch.ones(batch, length, dtype=torch.bool)
    if with_padding:
        real[1, 5:] = False
        real[2, 3:] = False
    position = POSITIONS.build("none")
    positions = torch.arange(length)
    attn_mask, is_causal = attention_plan(
        MASKS.build("bidirectional"), position, positions, positions,
        key_padding=real if with_padding else None,
    )
    with torch.no_grad():
        ours, _ = block(x, attn_mask=attn_mask, is_causal=is_causal, position=position,
                        positions=positions)
        theirs = reference(x, src_key_padding_mask=~real if with_padding else None)
    # Padded query rows are not part of the contract (the reference may zero them).
    torch.testing.assert_close(ours[real], theirs[real], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("use_is_causal", [False, True])
def test_decoder_block_matches_transformer_decoder_layer(placement, activation, use_is_causal):
    torch.manual_seed(1)
    reference = nn.TransformerDecoderLayer(
        D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, activation=activation, batch_first=True,
        norm_first=placement == "pre",
    )
    _randomise(reference)
    reference.eval()
    block = Block(_config("encoder_decoder", placement, activation, "causal"), cross=True).eval()
    with torch.no_grad():
        _copy_decoder(block, reference)

    batch, length, source_length = 2, 6, 9
    target = torch.randn(batch, length, D_MODEL)
    memory = torch.randn(batch, source_length, D_MODEL)
    position = POSITIONS.build("none")
    positions = torch.arange(length)
    if use_is_causal:
        attn_mask, is_causal = None, True
    else:  # a materialised boolean mask, as attention_plan builds when it cannot use is_causal
        attn_mask = MASKS.build("causal").allowed(positions, positions)
        is_causal = False
    causal = nn.Transformer.generate_square_subsequent_mask(length)
    with torch.no_grad():
        ours, _ = block(target, attn_mask=attn_mask, is_causal=is_causal, position=position,
                        positions=positions, memory=memory)
        theirs = reference(target, memory, tgt_mask=causal)
    torch.testing.assert_close(ours, theirs, atol=TOLERANCE, rtol=0)


def test_decoder_block_memory_padding_matches_reference():
    """Source padding hides memory keys from cross-attention, as memory_key_padding_mask does."""
    torch.manual_seed(2)
    reference = nn.TransformerDecoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0,
                                           batch_first=True)
    _randomise(reference)
    reference.eval()
    block = Block(_config("encoder_decoder", "post", "relu", "causal"), cross=True).eval()
    with torch.no_grad():
        _copy_decoder(block, reference)
    target, memory = torch.randn(2, 5, D_MODEL), torch.randn(2, 8, D_MODEL)
    real = torch.ones(2, 8, dtype=torch.bool)
    real[0, 6:] = False
    with torch.no_grad():
        ours, _ = block(target, attn_mask=None, is_causal=True, position=POSITIONS.build("none"),
                        positions=torch.arange(5), memory=memory,
                        memory_mask=real[:, None, None, :])
        theirs = reference(target, memory,
                           tgt_mask=nn.Transformer.generate_square_subsequent_mask(5),
                           memory_key_padding_mask=~real)
    torch.testing.assert_close(ours, theirs, atol=TOLERANCE, rtol=0)
