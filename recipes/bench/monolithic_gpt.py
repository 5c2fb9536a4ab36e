"""The monolithic reference of `zoo_vs_gpt`: a GPT in one file, no registry, nanoGPT's layout
(fused qkv Linear, `c_attn`/`c_proj`/`c_fc` names, `wte`/`wpe`), written by hand with every
position variant of the zoo spelled out inline, so that the zoo's registry-built decoder can be
timed against the straightforward form of the same math.

Initialisation is GPT-2's, as nanoGPT applies it: N(0, INIT_STD) for every weight, zero biases,
and INIT_STD / sqrt(2·layers) for the projections that write into the residual stream.
`load_zoo` copies a zoo model's weights in, to check that both compute the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tzoo.components.positions import alibi_slopes, relative_buckets

INIT_STD = 0.02


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, mask: Tensor | None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        if rope is not None:
            # RoFormer's pairs (2i, 2i+1): (a, b) -> (a·cos − b·sin, b·cos + a·sin).
            cos, sin = rope
            q = q * cos + torch.stack((-q[..., 1::2], q[..., 0::2]), dim=-1).flatten(-2) * sin
            k = k * cos + torch.stack((-k[..., 1::2], k[..., 0::2]), dim=-1).flatten(-2) * sin
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, d: int, mult: int):
        super().__init__()
        self.c_fc = nn.Linear(d, mult * d)
        self.c_proj = nn.Linear(mult * d, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class GPTBlock(nn.Module):
    def __init__(self, d: int, heads: int, mult: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLP(d, mult)

    def forward(self, x, rope, mask):
        x = x + self.attn(self.ln_1(x), rope, mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT with the position variant spelled out."""

    def __init__(self, position: str, *, vocab: int, context: int, d: int, layers: int,
                 heads: int, mult: int):
        super().__init__()
        self.position = position
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(GPTBlock(d, heads, mult) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        hd = d // heads
        t = torch.arange(context, dtype=torch.float32)
        causal = torch.ones(context, context, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)
        if position == "learned":
            self.wpe = nn.Embedding(context, d)
        elif position == "sinusoidal":
            angles = t[:, None] * 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
            waves = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)
            self.register_buffer("wpe_fixed", INIT_STD * math.sqrt(2.0) * waves, persistent=False)
        elif position == "rotary":
            angles = t[:, None] * 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
            angles = angles.repeat_interleave(2, dim=-1)  # one angle per channel pair
            self.register_buffer("rope_cos", angles.cos(), persistent=False)
            self.register_buffer("rope_sin", angles.sin(), persistent=False)
        elif position == "alibi":
            distance = (t[:, None] - t[None, :]).abs()
            bias = -alibi_slopes(heads)[:, None, None] * distance[None]
            mask = bias.masked_fill(~causal, float("-inf"))[None]
            self.register_buffer("alibi_mask", mask, persistent=False)
        elif position == "relative":
            self.rel = nn.Embedding(32, heads)
            relative = torch.arange(context)[None, :] - torch.arange(context)[:, None]
            buckets = relative_buckets(relative, bidirectional=False, num_buckets=32,
                                       max_distance=128)
            self.register_buffer("rel_buckets", buckets, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, INIT_STD / math.sqrt(2 * layers))

    @staticmethod
    def _init(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, INIT_STD)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, INIT_STD)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        x = self.wte(idx)
        rope = mask = None
        if self.position == "learned":
            x = x + self.wpe(torch.arange(T, device=idx.device))
        elif self.position == "sinusoidal":
            x = x + self.wpe_fixed[:T]
        elif self.position == "rotary":
            rope = self.rope_cos[:T], self.rope_sin[:T]
        elif self.position == "alibi":
            mask = self.alibi_mask[:, :, :T, :T]
        elif self.position == "relative":
            bias = self.rel(self.rel_buckets[:T, :T]).permute(2, 0, 1)
            mask = bias.masked_fill(~self.causal[:T, :T], float("-inf"))[None]
        for block in self.h:
            x = block(x, rope, mask)
        return F.linear(self.ln_f(x), self.wte.weight)

    def load_zoo(self, zoo: nn.Module) -> None:
        """Copy a zoo model's weights in (to check that both compute the same function)."""
        z = dict(zoo.named_parameters())
        mine = dict(self.named_parameters())
        names = {"wte.weight": "embedding.weight", "ln_f.weight": "stack.final_norm.weight",
                 "ln_f.bias": "stack.final_norm.bias", "wpe.weight": "position.table.weight",
                 "rel.weight": "position.table.weight"}
        for i in range(len(self.h)):
            b = f"stack.blocks.{i}."
            for ours, theirs in (("ln_1", "self_attention_sublayer.norm"),
                                 ("attn.c_attn", "self_attention.qkv"),
                                 ("attn.c_proj", "self_attention.out"),
                                 ("ln_2", "ffn_sublayer.norm"), ("mlp.c_fc", "ffn.up"),
                                 ("mlp.c_proj", "ffn.down")):
                for kind in ("weight", "bias"):
                    names[f"h.{i}.{ours}.{kind}"] = b + f"{theirs}.{kind}"
        assert set(names.values()) >= set(z) and set(mine) <= set(names), "parameter maps differ"
        with torch.no_grad():
            for ours, p in mine.items():
                p.copy_(z[names[ours]])
