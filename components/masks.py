"""Attention masks: which keys a query may see.

A mask turns query and key positions into a boolean "may attend" matrix, or None when every
query sees every key. The causal mask also declares that SDPA's built-in `is_causal` path can
replace the matrix (cheaper: no mask tensor is materialised).
"""

from __future__ import annotations

from torch import Tensor

from .errors import ConfigError
from .families import MASKS


class AttentionMask:
    """Base class for masks."""

    #: whether a query never sees a later key (generation needs this)
    causal = False

    @classmethod
    def check(cls, config, **context) -> None:
        """Reject combinations this mask cannot serve."""

    def allowed(
        self, q_positions: Tensor, k_positions: Tensor, prefix_lengths: Tensor | None = None
    ) -> Tensor | None:
        """Boolean (batch or 1, 1, q, k): True where the query may attend. None: all allowed."""
        raise NotImplementedError


@MASKS.register("causal")
class CausalMask(AttentionMask):
    """Each position sees itself and the past (autoregressive decoding; Radford et al. 2018)."""

    causal = True

    def allowed(self, q_positions, k_positions, prefix_lengths=None):
        return (k_positions[None, :] <= q_positions[:, None])[None, None]


@MASKS.register("bidirectional", aliases=("full",))
class BidirectionalMask(AttentionMask):
    """Every position sees every other (BERT's encoder; Devlin et al. 2019)."""

    def allowed(self, q_positions, k_positions, prefix_lengths=None):
        return None


@MASKS.register("prefix")
class PrefixMask(AttentionMask):
    """Bidirectional inside a prefix, causal after it (the prefix LM of Raffel et al. 2020,
    section 3.2.1; Liu et al. 2018).

    The prefix length is fixed here (`length`) or given per sequence by the task (the source of a
    decoder-only translation, the prefix LM objective), which then passes `prefix_lengths`.
    """

    causal = True  # positions after the prefix never see later ones, so generation is sound

    def __init__(self, length: int | None = None):
        if length is not None and int(length) < 1:
            raise ConfigError("a prefix length must be >= 1", key="model.mask.length")
        self.length = None if length is None else int(length)

    @classmethod
    def example_arguments(cls, config) -> dict:
        """A short fixed prefix: without a length, `check` refuses the mask unless the task
        supplies lengths per sequence."""
        return {"length": 3}

    @classmethod
    def check(cls, config, length: int | None = None, task_supplies_prefix: bool = False,
              **context) -> None:
        if length is None and not task_supplies_prefix:
            raise ConfigError(
                "a prefix mask needs a prefix length: set model.mask: {name: prefix, length: N}, "
                "or use a task that supplies one per sequence (the 'prefix' LM objective, "
                "decoder-only translation)",
                key="model.mask",
            )

    def allowed(self, q_positions, k_positions, prefix_lengths=None):
        causal = (k_positions[None, :] <= q_positions[:, None])[None, None]
        if prefix_lengths is None:
            if self.length is None:
                raise ConfigError("a prefix mask needs prefix lengths", key="model.mask")
            return causal | (k_positions < self.length)[None, None, None, :]
        in_prefix = k_positions[None, :] < prefix_lengths[:, None]  # (batch, k)
        return causal | in_prefix[:, None, None, :]
