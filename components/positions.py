"""Positional encodings.

They act in three different places, so one protocol has three hooks and each variant overrides
only what it needs:

- ``embed(x, positions)``: added to the token embeddings (sinusoidal, learned);
- ``rotate(q, k, positions)``: applied to queries and keys in every self-attention layer (rotary);
- ``bias(q_positions, k_positions)``: added to the attention scores (ALiBi, relative bias);
  a bias that depends only on the offset q - k also offers ``offset_bias(length, rows, ...)``, the
  block a causal pass attends through without a (heads, T, T) mask (components/offset_attention.py).

One instance serves a whole stack, so a bias table or a rotation table is computed once per
forward pass, not once per layer. Cross-attention uses none of them (as in T5 and the original
Transformer): the decoder's queries already carry position, the encoder's keys too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .families import POSITIONS
from .offset_attention import OffsetBias


class ContextTooLong(ConfigError):
    """A sequence is longer than a position variant can represent (a learned table's size)."""


class PositionEncoding(nn.Module):
    """Base class: a NoPE model overrides nothing."""

    #: the longest sequence this variant can encode (None: unbounded)
    max_len: int | None = None
    #: which hooks the variant uses, so that the model skips the others entirely
    uses_embed = False
    uses_rotate = False
    uses_bias = False

    def __init__(self) -> None:
        # Explicit, so that the registry passes a variant only the arguments it names
        # (nn.Module's own `**kwargs` would make it pass everything, and fail).
        super().__init__()

    @classmethod
    def check(cls, config, **context) -> None:
        """Reject combinations this variant cannot serve (called before anything trains)."""

    def reserve(self, length: int) -> None:
        """The coming forward pass uses positions below `length`. A plain int from the model,
        so that no variant reads a tensor back to size or check its tables: on a GPU that
        waits for the device, and under torch.compile it breaks the graph."""

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        return q, k

    def bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor | None:
        return None

    def offset_bias(self, length: int, rows: int, dtype: torch.dtype,
                    device: torch.device) -> OffsetBias | None:
        """For a bias that depends only on q - k: in a causal pass of `length` positions, the bias
        of the last `rows` queries against every key, -inf above the diagonal, (1, heads, rows,
        length). None: the bias is not of that kind (or this variant has none)."""
        return None


def _causal_block(bias: Tensor, length: int, rows: int, device: torch.device) -> Tensor:
    """(1, heads, rows, length): `bias` of the last `rows` queries with -inf above the diagonal."""
    queries = torch.arange(length - rows, length, device=device)
    future = torch.arange(length, device=device)[None, :] > queries[:, None]
    return bias.masked_fill(future, float("-inf"))[None]


@POSITIONS.register("none", aliases=("nope",))
class NoPosition(PositionEncoding):
    """No positional information (NoPE; Haviv et al. 2022, "Transformer Language Models without
    Positional Encodings Still Learn Positional Information"). A causal mask alone leaks order.

    Under a bidirectional mask nothing does: the model sees a bag of words. That is refused
    unless `bag_of_words: true` says it is the point (Haviv et al.'s masked-LM ablation); it
    is no example combination, so the family-wide tests leave it to its own test."""

    def __init__(self, bag_of_words: bool = False) -> None:
        super().__init__()
        self.bag_of_words = bag_of_words

    @staticmethod
    def _orderless(config) -> bool:
        return config.resolved_mask_name() == "bidirectional" and config.arch != "encoder_decoder"

    @classmethod
    def check(cls, config, bag_of_words: bool = False, **context) -> None:
        if cls._orderless(config) and not bag_of_words:
            raise ConfigError(
                "position 'none' with a bidirectional mask gives a bag-of-words model that cannot "
                "tell any order apart; pick a position variant (sinusoidal, learned, rotary, "
                "alibi, relative) or a causal/prefix mask, or say "
                "position: {name: none, bag_of_words: true} to demonstrate exactly that",
                key="model.position",
            )


@POSITIONS.register("sinusoidal")
class Sinusoidal(PositionEncoding):
    """Fixed sine/cosine waves added to the embeddings (Vaswani et al. 2017, "Attention Is All You
    Need", section 3.5).

    Its amplitude is matched to the token embeddings' initial scale (`scale`, default
    init_std·√2, so both have the same RMS): the paper instead multiplies embeddings by √d.
    """

    uses_embed = True

    def __init__(self, d_model: int, init_std: float = 0.02, scale: float | None = None,
                 base: float = 10000.0):
        super().__init__()
        if d_model % 2:
            raise ConfigError("sinusoidal positions need an even d_model", key="model.d_model")
        self.scale = scale if scale is not None else init_std * math.sqrt(2.0)
        inverse_frequency = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
        self.register_buffer("inverse_frequency", inverse_frequency, persistent=False)

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        angles = positions.to(torch.float32)[:, None] * self.inverse_frequency[None, :]
        waves = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)
        return x + (self.scale * waves).to(x.dtype)


@POSITIONS.register("learned")
class Learned(PositionEncoding):
    """A trained embedding per absolute position (Gehring et al. 2017, "Convolutional Sequence to
    Sequence Learning"; GPT-2). Cannot represent positions beyond its table."""

    uses_embed = True

    def __init__(self, d_model: int, max_len: int | None = None):
        super().__init__()
        if max_len is None:
            raise ConfigError(
                "learned positions need a maximum length: set model.max_len (or "
                "position: {name: learned, max_len: N})",
                key="model.max_len",
            )
        self.max_len = int(max_len)
        self.table = nn.Embedding(self.max_len, d_model)

    def reserve(self, length: int) -> None:
        if length > self.max_len:
            raise ContextTooLong(
                f"learned positions cover {self.max_len} positions, but position {length - 1} "
                "was asked for; raise model.max_len or use a variant that extrapolates "
                "(sinusoidal, rotary, alibi, relative, none)",
                key="model.max_len",
            )

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x + self.table(positions)  # the length was checked by `reserve`


@POSITIONS.register("rotary", aliases=("rope",))
class Rotary(PositionEncoding):
    """Rotary position embedding (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
    Position Embedding"): rotate query/key channel pairs by position-dependent angles so that
    their dot product depends only on the relative offset.

    Adjacent channels (2i, 2i+1) form a pair, as in the paper, so each rotation is one complex
    multiplication: a single kernel per tensor instead of the five of the "rotate half" form.
    """

    uses_rotate = True

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ConfigError("rotary positions need an even head dimension", key="model.d_model")
        inverse_frequency = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inverse_frequency", inverse_frequency, persistent=False)
        self._table: Tensor | None = None  # e^{i·position·frequency}, (positions, head_dim/2)
        self._reserved = 0  # the length the model announced for this pass (`reserve`)
        # Every layer of one forward pass passes the same `positions` tensor: remember the
        # last gather so it happens once per pass, not once per layer.
        self._last: tuple[Tensor, torch.dtype, Tensor] | None = None

    def reserve(self, length: int) -> None:
        """Grow the table to `length` rows now; until the next `reserve`, `rotate` trusts the
        positions it is given to be below the largest length announced (the model's forwards
        always announce theirs; a direct caller that does not is sized from its tensor)."""
        self._grow(length, self.inverse_frequency.device)
        self._reserved = max(self._reserved, length)

    def _grow(self, needed: int, device: torch.device) -> Tensor:
        """The table, rebuilt (doubling) if it has fewer than `needed` rows or is elsewhere."""
        table = self._table
        if table is None or table.shape[0] < needed or table.device != device:
            length = max(needed, 2 * (table.shape[0] if table is not None else 0), 256)
            steps = torch.arange(length, device=device, dtype=torch.float32)
            angles = steps[:, None] * self.inverse_frequency.to(device)[None, :]
            self._table = table = torch.polar(torch.ones_like(angles), angles)
        return table

    def _rotations(self, positions: Tensor, dtype: torch.dtype) -> Tensor:
        """(length, 1, head_dim/2) unit complex numbers for `positions`."""
        table = self._table
        if not self._reserved or table is None or table.device != positions.device:
            # Called outside a model's forward (no `reserve`): size the table from the tensor.
            needed = int(positions.max()) + 1 if positions.numel() else 1
            table = self._grow(needed, positions.device)
        return table[positions][:, None, :].to(dtype)

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Rotate (batch, length, heads, head_dim) queries and keys to their `positions`."""
        compute = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
        complex_dtype = torch.complex128 if compute == torch.float64 else torch.complex64
        last = self._last
        if last is not None and last[0] is positions and last[1] == complex_dtype:
            rotations = last[2]
        else:
            rotations = self._rotations(positions, complex_dtype)
            self._last = (positions, complex_dtype, rotations)
        return _rotate(q, rotations, compute), _rotate(k, rotations, compute)


def _rotate(x: Tensor, rotations: Tensor, compute: torch.dtype) -> Tensor:
    pairs = torch.view_as_complex(x.to(compute).unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotations).flatten(-2).to(x.dtype)


def alibi_slopes(heads: int) -> Tensor:
    """The per-head slopes of ALiBi: a geometric sequence starting at 2^(-8/n), and for a head
    count that is not a power of two, the closest power's slopes plus every other slope of the
    next power's (Press et al. 2022, section 3)."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(heads))
    slopes = power_of_two(closest)
    if closest < heads:
        slopes += power_of_two(2 * closest)[0::2][: heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


@POSITIONS.register("alibi")
class ALiBi(PositionEncoding):
    """Attention with Linear Biases (Press et al. 2022, "Train Short, Test Long"): no position
    embedding; each head subtracts slope·distance from its attention scores.

    The bias depends on |i - j| only, so under a bidirectional mask it cannot tell left from
    right; that combination is refused unless `symmetric: true` says it is intended.
    """

    uses_bias = True

    def __init__(self, heads: int, symmetric: bool = False):
        super().__init__()
        self.symmetric = symmetric
        self.register_buffer("slopes", alibi_slopes(heads), persistent=False)
        # The causal block depends on nothing learned: built once per length (and rows, dtype,
        # device), then shared by every layer of every pass at that length.
        self._block: tuple[tuple, OffsetBias] | None = None

    @staticmethod
    def _sees_both_ways(config) -> bool:
        encoder_side = config.arch in ("encoder", "encoder_decoder")
        return encoder_side or config.resolved_mask_name() == "bidirectional"

    @classmethod
    def example_arguments(cls, config) -> dict:
        """`symmetric: true` where a query sees both ways, which `check` refuses without it."""
        return {"symmetric": True} if cls._sees_both_ways(config) else {}

    @classmethod
    def check(cls, config, symmetric: bool = False, **context) -> None:
        if cls._sees_both_ways(config) and not symmetric:
            raise ConfigError(
                "ALiBi's bias depends only on |i - j|, so in a bidirectional encoder it cannot "
                "tell left from right; use rotary or relative there, or say "
                "position: {name: alibi, symmetric: true} to run it anyway",
                key="model.position",
            )

    def bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        distance = (q_positions[:, None] - k_positions[None, :]).abs().to(self.slopes.dtype)
        return -self.slopes[:, None, None] * distance[None]

    def offset_bias(self, length, rows, dtype, device):
        key = (length, rows, dtype, device)
        if self._block is None or self._block[0] != key:
            positions = torch.arange(length, device=device)
            bias = self.bias(positions[length - rows:], positions).to(device=device, dtype=dtype)
            self._block = key, OffsetBias(_causal_block(bias, length, rows, device))
        return self._block[1]


def relative_buckets(
    relative: Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> Tensor:
    """T5's bucketing of relative offsets (key - query): exact for small offsets, logarithmic up
    to `max_distance`, one bucket beyond. A bidirectional model spends half the buckets on each
    side; a causal one only looks back."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).long() * num_buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = num_buckets // 2
    is_small = distance < exact
    logarithmic = exact + (
        torch.log(distance.float().clamp(min=1) / exact)
        / math.log(max_distance / exact)
        * (num_buckets - exact)
    ).long()
    logarithmic = logarithmic.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, logarithmic)


@POSITIONS.register("relative", aliases=("t5",))
class RelativeBias(PositionEncoding):
    """A learned scalar bias per head and bucketed relative offset, shared by all layers
    (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
    Transformer", section 2.1; after Shaw et al. 2018)."""

    uses_bias = True

    def __init__(self, heads: int, causal: bool = True, num_buckets: int = 32,
                 max_distance: int = 128):
        super().__init__()
        self.bidirectional = not causal
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.table = nn.Embedding(num_buckets, heads)
        # The smallest offset from which every larger one falls into the last bucket (looking
        # back; buckets grow with distance and the last one is reached by max_distance).
        back = relative_buckets(-torch.arange(max_distance + 1), bidirectional=False,
                                num_buckets=num_buckets, max_distance=max_distance)
        self.saturation = max(1, int((back < num_buckets - 1).sum()))
        # The bucket of each pair of a causal block, and where it is -inf, per length and rows:
        # the bias itself is learned, so it is read from the table at every pass.
        self._block: tuple[tuple, Tensor, Tensor] | None = None

    def bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        relative = k_positions[None, :] - q_positions[:, None]
        buckets = relative_buckets(
            relative, bidirectional=self.bidirectional, num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return self.table(buckets).permute(2, 0, 1)

    def offset_bias(self, length, rows, dtype, device):
        if self.bidirectional:
            return None  # a causal pass of a bidirectional bias: not built that way (see model.py)
        key = (length, rows, device)
        if self._block is None or self._block[0] != key:
            positions = torch.arange(length, device=device)
            queries = positions[length - rows:]
            buckets = relative_buckets(
                positions[None, :] - queries[:, None], bidirectional=False,
                num_buckets=self.num_buckets, max_distance=self.max_distance,
            )
            future = torch.zeros(rows, length, device=device).masked_fill(
                positions[None, :] > queries[:, None], float("-inf"))
            self._block = key, buckets, future
        _, buckets, future = self._block
        weight = self.table.weight
        values = (weight.detach().t()[:, buckets].to(dtype) + future.to(dtype))[None]
        return OffsetBias(values, table=weight, buckets=buckets, saturation=self.saturation)
