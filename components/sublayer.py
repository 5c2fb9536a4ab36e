"""A sublayer is placement(norm, residual, fn).

The placement decides where the norm sits around `fn`; the residual decides how `fn`'s output
joins the stream:

    pre        x ⊕ f(N(x))
    post       N(x ⊕ f(x))
    sandwich   x ⊕ N2(f(N1(x)))

with ⊕ one of `add` (x + y), `none` (y alone) and `rezero` (x + g·y, g starting at 0). The
stream may be scaled before the sum, α·x ⊕ y: DeepNorm's α, which the model passes every residual
as `stream_scale` from its initialisation variant (components/initialisation.py; 1 elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .families import PLACEMENTS, RESIDUALS


class Residual(nn.Module):
    """Base class: combine the stream `x` with a sublayer's output `y`.

    A residual that keeps the stream takes `stream_scale` (α): the stream is multiplied by it
    before the sum. One that has no stream to scale (`none`) leaves the argument out of its
    constructor, which is how an initialisation that needs α (DeepNorm) tells them apart."""

    def __init__(self, stream_scale: float = 1.0):
        super().__init__()
        self.stream_scale = float(stream_scale)

    def scaled(self, x: Tensor) -> Tensor:
        """α·x; `x` itself when α is 1, so that the usual residual costs no multiplication."""
        return x if self.stream_scale == 1.0 else x * self.stream_scale

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError


@RESIDUALS.register("add")
class AddResidual(Residual):
    """The identity shortcut x + f(x) (He et al. 2016, "Deep Residual Learning")."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.scaled(x) + y


@RESIDUALS.register("none")
class NoResidual(Residual):
    """No shortcut: the sublayer's output replaces the stream (the ablation that shows why
    residuals matter; deep stacks stop training)."""

    def __init__(self) -> None:  # no stream, so no `stream_scale`
        super().__init__()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return y


@RESIDUALS.register("rezero")
class ReZero(Residual):
    """x + α·f(x) with a learned scalar α initialised to 0, so every layer starts as the identity
    (Bachlechner et al. 2020, "ReZero is All You Need")."""

    def __init__(self, stream_scale: float = 1.0) -> None:
        super().__init__(stream_scale)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.scaled(x) + self.alpha * y


class Placement(nn.Module):
    """Base class: wraps a sublayer function with norms and a residual."""

    #: whether the stack needs one more norm after its last block (pre-LN streams are unnormed)
    needs_final_norm = True

    def __init__(self, make_norm: Callable[[], nn.Module], residual: Residual):
        super().__init__()
        self.residual = residual

    def forward(self, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        raise NotImplementedError


@PLACEMENTS.register("pre")
class PreNorm(Placement):
    """Norm before the sublayer, stream left untouched (Xiong et al. 2020, "On Layer
    Normalization in the Transformer Architecture"; GPT-2)."""

    def __init__(self, make_norm, residual):
        super().__init__(make_norm, residual)
        self.norm = make_norm()

    def forward(self, x, fn):
        return self.residual(x, fn(self.norm(x)))


@PLACEMENTS.register("post")
class PostNorm(Placement):
    """Norm after the residual sum, as in the original Transformer (Vaswani et al. 2017);
    needs learning-rate warm-up to train (Xiong et al. 2020)."""

    needs_final_norm = False

    def __init__(self, make_norm, residual):
        super().__init__(make_norm, residual)
        self.norm = make_norm()

    def forward(self, x, fn):
        return self.norm(self.residual(x, fn(x)))


@PLACEMENTS.register("sandwich")
class SandwichNorm(Placement):
    """Norm before and after the sublayer, inside the residual (Ding et al. 2021, "CogView",
    section 3.3)."""

    def __init__(self, make_norm, residual):
        super().__init__(make_norm, residual)
        self.norm = make_norm()
        self.post_norm = make_norm()

    def forward(self, x, fn):
        return self.residual(x, self.post_norm(fn(self.norm(x))))
