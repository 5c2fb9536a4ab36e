"""Position-wise feed-forward sublayers.

The gated variants split their hidden width in two (a value and a gate); to keep the parameter
count of a plain MLP with the same `mult`, their hidden width is 2/3 of it, as in Shazeer 2020.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .families import FFNS


class FeedForward(nn.Module):
    """Base class: `d_model -> hidden -> d_model` with an activation in between."""

    #: False for the variant that removes the sublayer entirely
    present = True


class _MLP(FeedForward):
    activation = staticmethod(F.relu)

    def __init__(self, d_model: int, mult: float = 4.0, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        hidden = int(mult * d_model)
        self.up = nn.Linear(d_model, hidden, bias=bias)
        self.down = nn.Linear(hidden, d_model, bias=bias)
        self.down.is_residual_projection = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.down(self.activation(self.up(x))))


@FFNS.register("relu")
class ReLUFeedForward(_MLP):
    """Two linear maps with a ReLU between (Vaswani et al. 2017, section 3.3)."""

    activation = staticmethod(F.relu)


@FFNS.register("gelu")
class GELUFeedForward(_MLP):
    """Two linear maps with a GELU between (Hendrycks & Gimpel 2016; used by BERT and GPT-2)."""

    activation = staticmethod(F.gelu)


class _GatedMLP(FeedForward):
    activation = staticmethod(F.silu)

    def __init__(self, d_model: int, mult: float = 4.0, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        hidden = max(1, round(2 * mult * d_model / 3))
        self.up = nn.Linear(d_model, 2 * hidden, bias=bias)  # value and gate in one matmul
        self.down = nn.Linear(hidden, d_model, bias=bias)
        self.down.is_residual_projection = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.dropout(self.down(value * self.activation(gate)))


@FFNS.register("swiglu")
class SwiGLUFeedForward(_GatedMLP):
    """Gated linear unit with a Swish (SiLU) gate (Shazeer 2020, "GLU Variants Improve
    Transformer")."""

    activation = staticmethod(F.silu)


@FFNS.register("geglu")
class GeGLUFeedForward(_GatedMLP):
    """Gated linear unit with a GELU gate (Shazeer 2020, "GLU Variants Improve Transformer")."""

    activation = staticmethod(F.gelu)


@FFNS.register("none")
class NoFeedForward(FeedForward):
    """No feed-forward sublayer: an attention-only block (as in Elhage et al. 2021, "A Mathematical
    Framework for Transformer Circuits")."""

    present = False

    def __init__(self, d_model: int):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:  # never called: the block skips the sublayer
        raise RuntimeError("the 'none' feed-forward has no computation")
