"""Normalisation layers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .families import NORMS


@NORMS.register("layernorm")
class LayerNorm(nn.LayerNorm):
    """Layer normalisation: zero mean, unit variance, then a learned gain and bias (Ba et al.
    2016, "Layer Normalization")."""

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True):
        super().__init__(d_model, eps=eps, bias=bias)


@NORMS.register("rmsnorm")
class RMSNorm(nn.Module):
    """Root-mean-square normalisation: rescale only, no centring (Zhang & Sennrich 2019, "Root
    Mean Square Layer Normalization")."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


@NORMS.register("scalenorm")
class ScaleNorm(nn.Module):
    """Scale to a learned length: g · x / ||x||, one scalar g initialised to √d (Nguyen & Salazar
    2019, "Transformers without Tears")."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.tensor(math.sqrt(d_model)))

    def forward(self, x: Tensor) -> Tensor:
        return self.gain * x / x.norm(dim=-1, keepdim=True).clamp(min=self.eps)


@NORMS.register("none", aliases=("identity",))
class NoNorm(nn.Identity):
    """No normalisation: the identity (the un-normalised baseline of the placement studies)."""

    def __init__(self, d_model: int):
        super().__init__()
