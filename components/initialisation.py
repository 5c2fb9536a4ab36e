"""Initialisation: how the weights start, and at what scale the embeddings enter the stream.

A variant (`model.init`) answers the model three questions, once, when it is built:

- `initialise(model)`: fill the weights. Every variant zeroes the linear biases and leaves the
  norms' gains and biases, and ReZero's gate, at their own starting values;
- `embedding_scale`: the factor the token embeddings are multiplied by in the forward pass
  (√d_model in the original Transformer), and `embedding_rms`, the scale at which they then
  enter the stream, which the position variants match (learned tables are drawn at it,
  sinusoids get its RMS);
- `stream_scale(stack)`: the factor the residual stream is multiplied by before a sublayer's
  output is added (DeepNorm's α; 1 elsewhere), passed to every residual as `stream_scale`.

The scheme and the embedding scale are one choice, not two switches: the schemes were designed
together with their embedding scale (GPT-2's small embeddings and the original Transformer's
unit-scale ones make pre-LN and post-LN behave differently at initialisation, see
reports/lm-norms/README.md).

Weights are addressed by kind (`weight_parts`). A fused projection (self-attention's q|k|v, a
cross-attention's k|v, a gated FFN's value|gate) is split into its parts, so that a rule that
depends on the matrix shape (Xavier) treats each projection as the separate matrix the papers
describe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from .attention import Attention
from .errors import ConfigError
from .families import INITS, RESIDUALS
from .ffn import FeedForward
from .positions import PositionEncoding
from .registry import accepted_arguments

if TYPE_CHECKING:
    from .config import ModelConfig

# The kinds of weight an initialisation tells apart.
TOKEN_EMBEDDING = "token_embedding"
POSITION_TABLE = "position_table"  # a table added to the stream (learned positions)
BIAS_TABLE = "bias_table"  # any other table (T5's relative attention bias)
QUERY, KEY, VALUE = "query", "key", "value"
ATTENTION_OUT = "attention_out"
FFN_IN, FFN_OUT = "ffn_in", "ffn_out"
OUTPUT = "output"  # an untied output layer (a tied one is the token embedding)
LINEAR = "linear"  # any other linear map (a plugin's)
KINDS = (TOKEN_EMBEDDING, POSITION_TABLE, BIAS_TABLE, QUERY, KEY, VALUE, ATTENTION_OUT, FFN_IN,
         FFN_OUT, OUTPUT, LINEAR)


@dataclass(frozen=True)
class WeightPart:
    """One weight matrix, or the rows of one projection inside a fused matrix."""

    kind: str
    #: the parameter's name, with the rows `[a:b]` of a part of a fused matrix
    name: str
    #: a view that shares the parameter's storage (writing to it initialises the parameter)
    weight: Tensor
    #: "encoder" or "decoder" for a weight inside a block, None outside the blocks
    stack: str | None
    #: whether it writes into the residual stream (attention output, FFN down)
    residual: bool = False


def weight_parts(model: nn.Module) -> list[WeightPart]:
    """Every weight of `model` (a zoo architecture) by kind, fused projections split."""
    stack_of = {id(module): role for role, stack in model.named_stacks()
                for module in stack.modules()}
    parts: list[WeightPart] = []
    claimed: set[int] = set()

    def add(kind: str, name: str, weight: Tensor, owner: nn.Module, residual: bool = False,
            rows: tuple[int, int] | None = None) -> None:
        claimed.add(id(weight))
        view = weight.detach()
        if rows is not None:
            view, name = view[rows[0]:rows[1]], f"{name}[{rows[0]}:{rows[1]}]"
        parts.append(WeightPart(kind, name, view, stack_of.get(id(owner)), residual))

    add(TOKEN_EMBEDDING, "embedding.weight", model.embedding.weight, model.embedding)
    for name, module in model.named_modules():
        if isinstance(module, PositionEncoding):
            kind = POSITION_TABLE if module.uses_embed else BIAS_TABLE
            for inner, table in module.named_modules():
                if isinstance(table, nn.Embedding):
                    add(kind, f"{name}.{inner}.weight", table.weight, module)
        elif isinstance(module, Attention):
            q_width = module.heads * module.head_dim
            kv_width = module.kv_heads * module.head_dim
            if module.cross:
                add(QUERY, f"{name}.query.weight", module.query.weight, module)
                fused, layout = ("key_value", module.key_value), ((KEY, kv_width),
                                                                  (VALUE, kv_width))
            else:
                fused, layout = ("qkv", module.qkv), ((QUERY, q_width), (KEY, kv_width),
                                                      (VALUE, kv_width))
            start = 0
            for kind, width in layout:
                add(kind, f"{name}.{fused[0]}.weight", fused[1].weight, module,
                    rows=(start, start + width))
                start += width
            add(ATTENTION_OUT, f"{name}.out.weight", module.out.weight, module, residual=True)
        elif isinstance(module, FeedForward) and isinstance(getattr(module, "up", None),
                                                            nn.Linear):
            up, down = module.up, module.down
            # An up projection twice as wide as the down projection reads holds a value and a
            # gate (the GLU variants): two matrices, each of the down projection's width.
            width = down.in_features
            gated = up.out_features == 2 * width
            for rows in ((0, width), (width, 2 * width)) if gated else (None,):
                add(FFN_IN, f"{name}.up.weight", up.weight, module, rows=rows)
            add(FFN_OUT, f"{name}.down.weight", down.weight, module, residual=True)
    output_modules = {id(m) for m in model.output.modules()}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if id(weight) in claimed:
            continue
        if isinstance(module, nn.Linear):
            kind = OUTPUT if id(module) in output_modules else LINEAR
            add(kind, f"{name}.weight", module.weight, module,
                residual=getattr(module, "is_residual_projection", False))
        elif isinstance(module, nn.Embedding):
            add(BIAS_TABLE, f"{name}.weight", module.weight, module)
    return parts


def zero_biases(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


class Initialisation:
    """Base class: one initialisation scheme for the model `config` describes."""

    def __init__(self, config: ModelConfig):
        self.config = config

    @property
    def embedding_scale(self) -> float:
        """What the token embeddings are multiplied by in the forward pass."""
        return 1.0

    @property
    def embedding_rms(self) -> float:
        """The scale (RMS) at which the scaled token embeddings enter the stream."""
        raise NotImplementedError

    def stream_scale(self, stack: str) -> float:
        """α for the residuals of `stack` ("encoder" or "decoder")."""
        return 1.0

    def initialise(self, model: nn.Module) -> None:
        raise NotImplementedError

    @classmethod
    def check(cls, config, **context) -> None:
        """Reject combinations this scheme was not made for (called before anything trains)."""


def draw_unit_embeddings(parts: list[WeightPart], d_model: int) -> None:
    """The original Transformer's embeddings: the token table N(0, d^-½), read × √d so tokens
    enter the stream at unit scale (Vaswani et al. 2017, section 3.4; tensor2tensor and fairseq
    draw the table so); tables added to the stream (learned positions) N(0, 1) to match; other
    tables (a relative-position bias) N(0, d^-½)."""
    small = d_model ** -0.5
    for part in parts:
        if part.kind == POSITION_TABLE:
            nn.init.normal_(part.weight, 0.0, 1.0)
        elif part.kind in (TOKEN_EMBEDDING, BIAS_TABLE):
            nn.init.normal_(part.weight, 0.0, small)


class UnitEmbeddings(Initialisation):
    """Base class of the schemes that read the token embeddings × √d (`draw_unit_embeddings`)."""

    TABLES = (TOKEN_EMBEDDING, POSITION_TABLE, BIAS_TABLE)

    @property
    def embedding_scale(self) -> float:
        return math.sqrt(self.config.d_model)

    @property
    def embedding_rms(self) -> float:
        return 1.0


@INITS.register("gpt2")
class GPT2Init(Initialisation):
    """GPT-2's: weights N(0, init_std), the projections into the residual stream N(0, init_std /
    √(residual sublayers)), embeddings used as drawn (Radford et al. 2019, section 2.3). The
    default.

    Made for pre-LN: its embeddings enter the stream at init_std (0.02), so a final LayerNorm
    divides by that small scale. `unit_embeddings: true` keeps the linear maps and draws the
    embeddings at the original Transformer's unit scale instead (see `UnitEmbeddings`): the
    combination that tells the embedding scale's effect from the linear maps' (see
    `draw_unit_embeddings`).
    """

    def __init__(self, config: ModelConfig, unit_embeddings: bool = False):
        super().__init__(config)
        self.check(config, unit_embeddings=unit_embeddings)
        self.unit_embeddings = unit_embeddings

    @classmethod
    def check(cls, config, unit_embeddings: bool = False, **context) -> None:
        if not isinstance(unit_embeddings, bool):
            raise ConfigError(f"unit_embeddings must be true or false, got {unit_embeddings!r}",
                              key="model.init")

    @property
    def embedding_scale(self) -> float:
        return math.sqrt(self.config.d_model) if self.unit_embeddings else 1.0

    @property
    def embedding_rms(self) -> float:
        return 1.0 if self.unit_embeddings else self.config.init_std

    def residual_sublayers(self) -> int:
        """The sublayers that add to a stream: two per block, three per decoder block of an
        encoder-decoder (GPT-2's 1/√N with N = all of them, one stack or two)."""
        config = self.config
        if config.variant("arch")[0] == "encoder_decoder":
            return 2 * config.layers + 3 * (config.decoder_layers or config.layers)
        return 2 * config.layers

    def initialise(self, model: nn.Module) -> None:
        std = self.config.init_std
        residual_std = std / math.sqrt(max(1, self.residual_sublayers()))
        # One pass over the modules in registration order, one draw each: the order of the
        # draws is part of what makes a seed give the same weights from release to release.
        for module in model.modules():
            if isinstance(module, nn.Linear):
                scaled = getattr(module, "is_residual_projection", False)
                nn.init.normal_(module.weight, 0.0, residual_std if scaled else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
        if self.unit_embeddings:
            draw_unit_embeddings(weight_parts(model), self.config.d_model)


@INITS.register("vaswani")
class VaswaniInit(UnitEmbeddings):
    """The original Transformer's: Xavier-uniform linear maps, token embeddings N(0, d^-½)
    multiplied by √d_model in the forward pass (Vaswani et al. 2017, "Attention Is All You Need",
    section 3.4; the initialisers of tensor2tensor and fairseq).

    Xavier bounds are per projection: a fused q|k|v matrix is drawn as three d×d matrices. An
    untied output layer is a linear map like the others (Xavier uniform)."""

    def initialise(self, model: nn.Module) -> None:
        parts = weight_parts(model)
        draw_unit_embeddings(parts, self.config.d_model)
        for part in parts:
            if part.kind not in self.TABLES:
                nn.init.xavier_uniform_(part.weight)
        zero_biases(model)


def small_init_std(d_model: int) -> float:
    """√(2 / 5d): Xavier normal's std for a d×4d feed-forward map, used for every attention
    projection by SmallInit."""
    return math.sqrt(2.0 / (5.0 * d_model))


@INITS.register("small")
class SmallInit(UnitEmbeddings):
    """SmallInit (Nguyen & Salazar 2019, "Transformers without Tears"): attention projections
    (q, k, v, output) N(0, √(2/5d)), smaller than Xavier's √(1/d) for a d×d map, which the
    authors found unstable in post-LN; feed-forward maps Xavier normal (√(2/(d + d_ff))); token
    embeddings N(0, d^-½) × √d as in their code (github.com/tnq177/transformers_without_tears).

    Any other linear map (an untied output layer) is Xavier normal too."""

    def initialise(self, model: nn.Module) -> None:
        parts = weight_parts(model)
        draw_unit_embeddings(parts, self.config.d_model)
        attention_std = small_init_std(self.config.d_model)
        for part in parts:
            if part.kind in (QUERY, KEY, VALUE, ATTENTION_OUT):
                nn.init.normal_(part.weight, 0.0, attention_std)
            elif part.kind not in self.TABLES:
                nn.init.xavier_normal_(part.weight)
        zero_biases(model)


def deepnorm_constants(arch: str, layers: int, decoder_layers: int) -> dict[str, tuple[float,
                                                                                       float]]:
    """{stack: (α, β)} of DeepNorm for an architecture (Wang et al. 2022, Fig. 2 and section
    3.3): N encoder and M decoder layers."""
    if arch == "encoder_decoder":
        n, m = layers, decoder_layers
        return {"encoder": (0.81 * (n**4 * m) ** (1 / 16), 0.87 * (n**4 * m) ** (-1 / 16)),
                "decoder": ((3 * m) ** 0.25, (12 * m) ** -0.25)}
    role = "encoder" if arch == "encoder" else "decoder"
    return {role: ((2 * layers) ** 0.25, (8 * layers) ** -0.25)}


@INITS.register("deepnet")
class DeepNetInit(UnitEmbeddings):
    """DeepNorm (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers"): post-LN with
    the stream up-weighted, x ← LN(α·x + f(x)), and the value, attention-output and feed-forward
    weights Xavier normal with gain β (queries and keys gain 1), so that updates stay bounded at
    depth. Decoder- or encoder-only: α = (2N)^¼, β = (8N)^-¼; encoder-decoder: encoder α =
    0.81(N⁴M)^1/16, β = 0.87(N⁴M)^-1/16, decoder α = (3M)^¼, β = (12M)^-¼.

    Embeddings as in fairseq, which DeepNet is built on (N(0, d^-½) × √d); any other linear map
    (an untied output layer) Xavier normal, gain 1. Post-LN only, with a norm and a residual
    that keeps the stream."""

    SCALED = (VALUE, ATTENTION_OUT, FFN_IN, FFN_OUT)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.constants = deepnorm_constants(config.variant("arch")[0], config.layers,
                                            config.decoder_layers or config.layers)

    def stream_scale(self, stack: str) -> float:
        return self.constants[stack][0]

    def beta(self, stack: str) -> float:
        return self.constants[stack][1]

    def initialise(self, model: nn.Module) -> None:
        parts = weight_parts(model)
        draw_unit_embeddings(parts, self.config.d_model)
        for part in parts:
            if part.kind in self.TABLES:
                continue
            scaled = part.stack is not None and (part.kind in self.SCALED or (
                part.kind == LINEAR and part.residual))
            nn.init.xavier_normal_(part.weight, gain=self.beta(part.stack) if scaled else 1.0)
        zero_biases(model)

    @classmethod
    def example_fields(cls, config) -> dict:
        """post-LN, which `check` requires (the default placement is pre-LN)."""
        return {"placement": "post"}

    @classmethod
    def check(cls, config, **context) -> None:
        placement = config.variant("placement")[0]
        if placement != "post":
            raise ConfigError(
                f"DeepNorm is a post-LN scheme (LN(α·x + f(x))); with placement '{placement}' "
                "its up-weighted stream is never normalised and grows with depth; use "
                "placement: post, or an init made for any placement (gpt2, vaswani, small)",
                key="model.init",
            )
        if config.variant("norm")[0] == "none":
            raise ConfigError(
                "DeepNorm's α·x is balanced by the norm after every sum; with norm 'none' the "
                "stream grows by α at every sublayer; pick a norm (layernorm, rmsnorm, scalenorm) "
                "or another init (gpt2, vaswani, small)",
                key="model.init",
            )
        residual = config.variant("residual")[0]
        accepted = accepted_arguments(RESIDUALS.get(residual))
        if accepted is not None and "stream_scale" not in accepted:
            raise ConfigError(
                f"DeepNorm scales the residual stream by α, and residual '{residual}' keeps no "
                "stream to scale; use residual: add (or rezero), or another init (gpt2, vaswani, "
                "small)",
                key="model.init",
            )
