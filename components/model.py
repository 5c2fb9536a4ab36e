"""The three architectures, assembled from registered parts.

    tokens ─ embedding ─ position.embed ─ [block × L] ─ final norm ─ output layer ─ logits
                                 block = attention sublayer (+ cross-attention) + FFN sublayer

`build_model(config)` is the only entry point users need. Initialisation is a variant too
(`model.init`, components/initialisation.py): it fills the weights, sets the factor the token
embeddings are read with (√d_model for the original Transformer's, 1 for GPT-2's, the default)
and the factor each stack's residuals scale the stream by (DeepNorm's α, 1 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .attention import Attention
from .cache import KVCache, StaticKV
from .config import ModelConfig
from .families import (
    ARCHITECTURES,
    ATTENTION,
    FFNS,
    INITS,
    MASKS,
    NORMS,
    OUTPUTS,
    PLACEMENTS,
    RESIDUALS,
)
from .initialisation import Initialisation
from .masks import AttentionMask, CausalMask
from .offset_attention import ROWS as OFFSET_ROWS
from .offset_attention import CausalOffsetBias
from .positions import POSITIONS, PositionEncoding


class Block(nn.Module):
    """Self-attention, optional cross-attention, optional feed-forward: each a sublayer."""

    def __init__(self, config: ModelConfig, *, cross: bool = False, stream_scale: float = 1.0):
        super().__init__()
        d = config.d_model

        def sublayer() -> nn.Module:
            return PLACEMENTS.build(
                config.placement,
                make_norm=lambda: NORMS.build(config.norm, d_model=d),
                residual=RESIDUALS.build(config.residual, stream_scale=stream_scale),
            )

        def attention(is_cross: bool) -> Attention:
            return ATTENTION.build(config.attention, d_model=d, heads=config.heads,
                                   dropout=config.dropout, bias=config.bias, cross=is_cross)

        self.self_attention = attention(False)
        self.self_attention_sublayer = sublayer()
        self.cross_attention = attention(True) if cross else None
        self.cross_attention_sublayer = sublayer() if cross else None
        ffn = FFNS.build(config.ffn, d_model=d, mult=config.ffn_mult, dropout=config.dropout,
                         bias=config.bias)
        self.ffn = ffn if ffn.present else None
        self.ffn_sublayer = sublayer() if ffn.present else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        *,
        attn_mask: Tensor | CausalOffsetBias | None,
        is_causal: bool,
        position: PositionEncoding,
        positions: Tensor,
        cache: KVCache | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cross_cache: StaticKV | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        weights: dict[str, Tensor] = {}

        def self_attend(h: Tensor) -> Tensor:
            out, weights["self"] = self.self_attention(
                h, attn_mask=attn_mask, is_causal=is_causal, position=position,
                positions=positions, cache=cache, need_weights=need_weights,
            )
            return self.dropout(out)

        x = self.self_attention_sublayer(x, self_attend)
        if self.cross_attention is not None:

            def cross_attend(h: Tensor) -> Tensor:
                out, weights["cross"] = self.cross_attention(
                    h, memory=memory, attn_mask=memory_mask, cache=cross_cache,
                    need_weights=need_weights,
                )
                return self.dropout(out)

            x = self.cross_attention_sublayer(x, cross_attend)
        if self.ffn is not None:
            x = self.ffn_sublayer(x, self.ffn)
        return x, weights


class Stack(nn.Module):
    """`layers` blocks and, for placements that leave the stream unnormalised, a final norm.
    `stream_scale`: the α its residuals scale the stream by (from the initialisation)."""

    def __init__(self, config: ModelConfig, layers: int, *, cross: bool = False,
                 stream_scale: float = 1.0):
        super().__init__()
        self.blocks = nn.ModuleList(Block(config, cross=cross, stream_scale=stream_scale)
                                    for _ in range(layers))
        needs_final = PLACEMENTS.get(config.variant("placement")[0]).needs_final_norm
        self.final_norm = NORMS.build(config.norm, d_model=config.d_model) if needs_final else None

    def forward(self, x: Tensor, *, caches: list | None = None, cross_caches: list | None = None,
                need_weights: bool = False, hidden: list | None = None,
                **shared) -> tuple[Tensor, list[dict[str, Tensor]]]:
        maps = []
        for i, block in enumerate(self.blocks):
            x, weights = block(
                x, cache=caches[i] if caches else None,
                cross_cache=cross_caches[i] if cross_caches else None,
                need_weights=need_weights, **shared,
            )
            maps.append(weights)
            if hidden is not None:
                hidden.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, maps


def attention_plan(
    mask: AttentionMask,
    position: PositionEncoding,
    q_positions: Tensor,
    k_positions: Tensor,
    *,
    prefix_lengths: Tensor | None = None,
    key_padding: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor | CausalOffsetBias | None, bool]:
    """The (attn_mask, is_causal) pair every layer of one forward pass shares.

    Computed once per pass. A plain causal pass with no bias takes SDPA's `is_causal` path and
    materialises nothing. A causal pass whose bias depends only on the offset (ALiBi, relative)
    gets a `CausalOffsetBias`: the bias of its last queries, through which attention runs block
    by block without a (heads, T, T) mask (components/offset_attention.py). Otherwise the
    position bias and the mask are merged into one additive tensor. `key_padding` is True where a
    key is a real token.
    """
    same_span = q_positions.shape[0] == k_positions.shape[0]
    causal = isinstance(mask, CausalMask) and key_padding is None
    if causal and same_span and position.uses_bias:
        length = q_positions.shape[0]
        block = position.offset_bias(length, min(length, OFFSET_ROWS), dtype, q_positions.device)
        if block is not None:
            return CausalOffsetBias(block, lambda: _merged_mask(
                mask, position, q_positions, k_positions, prefix_lengths, None, dtype)), False
    if causal and not position.uses_bias:
        if same_span:
            return None, True
        if q_positions.shape[0] == 1:  # one new token sees the whole cache
            return None, False
    return _merged_mask(mask, position, q_positions, k_positions, prefix_lengths, key_padding,
                        dtype), False


def _merged_mask(mask: AttentionMask, position: PositionEncoding, q_positions: Tensor,
                 k_positions: Tensor, prefix_lengths: Tensor | None, key_padding: Tensor | None,
                 dtype: torch.dtype) -> Tensor | None:
    """The position bias and the mask as one additive (or boolean) attention mask."""
    bias = position.bias(q_positions, k_positions) if position.uses_bias else None
    allowed = mask.allowed(q_positions, k_positions, prefix_lengths)
    if key_padding is not None:
        keys = key_padding[:, None, None, :]
        allowed = keys if allowed is None else allowed & keys
    if bias is None:
        return allowed
    bias = bias[None].to(dtype)
    if allowed is None:
        return bias
    return bias.masked_fill(~allowed, float("-inf"))


@dataclass
class DecodingState:
    """What a model carries between generation steps: caches and how far it has got."""

    caches: list[KVCache]
    offset: int = 0
    prefix_lengths: Tensor | None = None
    cross_caches: list[StaticKV] = field(default_factory=list)
    memory: Tensor | None = None
    memory_padding: Tensor | None = None

    def reorder(self, index: Tensor) -> None:
        for cache in (*self.caches, *self.cross_caches):
            cache.reorder(index)
        if self.prefix_lengths is not None:
            self.prefix_lengths = self.prefix_lengths.index_select(0, index)
        if self.memory is not None:
            self.memory = self.memory.index_select(0, index)
        if self.memory_padding is not None:
            self.memory_padding = self.memory_padding.index_select(0, index)


class TransformerBase(nn.Module):
    """Shared by the three architectures: embedding, position, output layer, initialisation."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.initialisation: Initialisation = INITS.build(config.init, config=config,
                                                          key="model.init")
        # a plain float: the forward pass multiplies by it only when it is not 1
        self.embedding_scale = float(self.initialisation.embedding_scale)
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.output = OUTPUTS.build(config.output, embedding=self.embedding)

    def _position(self, *, causal: bool) -> PositionEncoding:
        config = self.config
        head_dim = config.d_model // config.heads
        return POSITIONS.build(
            config.position, d_model=config.d_model, head_dim=head_dim, heads=config.heads,
            # the scale the embeddings enter the stream at, which position tables match
            max_len=config.max_len, init_std=self.initialisation.embedding_rms, causal=causal,
        )

    def _stack(self, role: str, layers: int, *, cross: bool = False) -> Stack:
        return Stack(self.config, layers, cross=cross,
                     stream_scale=self.initialisation.stream_scale(role))

    def named_stacks(self) -> list[tuple[str, Stack]]:
        """("encoder" | "decoder", stack) for each stack of blocks, input side first."""
        raise NotImplementedError

    @staticmethod
    def _positions(position: PositionEncoding, start: int, stop: int,
                   device: torch.device) -> Tensor:
        """Positions start..stop-1 of this pass, announced to the variant as plain ints."""
        position.reserve(stop)
        return torch.arange(start, stop, device=device)

    def _embed(self, tokens: Tensor, position: PositionEncoding, positions: Tensor) -> Tensor:
        x = self.embedding(tokens)
        if self.embedding_scale != 1.0:
            x = x * self.embedding_scale
        if position.uses_embed:
            x = position.embed(x, positions)
        return self.embedding_dropout(x)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the position variant can represent (None: unbounded)."""
        return self.position.max_len


class LanguageModel(TransformerBase):
    """One stack over one sequence: the decoder-only and encoder-only architectures."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.mask: AttentionMask = MASKS.build(config.resolved_mask(), key="model.mask")
        # Relative buckets look both ways wherever any query sees a later key (a prefix too).
        self.position = self._position(causal=isinstance(self.mask, CausalMask))
        self.stack_role = "encoder" if config.variant("arch")[0] == "encoder" else "decoder"
        self.stack = self._stack(self.stack_role, config.layers)
        self.initialisation.initialise(self)

    def named_stacks(self) -> list[tuple[str, Stack]]:
        return [(self.stack_role, self.stack)]

    def new_state(self) -> DecodingState:
        return DecodingState(caches=[KVCache() for _ in self.stack.blocks])

    def forward(
        self,
        tokens: Tensor,
        *,
        prefix_lengths: Tensor | None = None,
        padding: Tensor | None = None,
        state: DecodingState | None = None,
        return_attention: bool = False,
        return_hidden: bool = False,
    ):
        """Logits (batch, length, vocab) for `tokens` (batch, length).

        `padding`: True where a token is real (keys that are padding are never attended).
        `state`: continue a generation from cached keys/values. With `return_attention` or
        `return_hidden` the result is `(logits, attentions)` / `(logits, hidden)` where
        attentions is a list per layer of (batch, heads, q, k) probabilities and hidden the
        embedding output then each block's output.
        """
        offset = state.offset if state is not None else 0
        if state is not None:
            if prefix_lengths is not None:
                state.prefix_lengths = prefix_lengths
            prefix_lengths = state.prefix_lengths
        length = tokens.shape[1]
        positions = self._positions(self.position, offset, offset + length, tokens.device)
        k_positions = torch.arange(0, offset + length, device=tokens.device)
        x = self._embed(tokens, self.position, positions)
        attn_mask, is_causal = attention_plan(
            self.mask, self.position, positions, k_positions, prefix_lengths=prefix_lengths,
            key_padding=padding, dtype=x.dtype,
        )
        hidden = [x] if return_hidden else None
        x, maps = self.stack(
            x, caches=state.caches if state is not None else None, need_weights=return_attention,
            hidden=hidden, attn_mask=attn_mask, is_causal=is_causal, position=self.position,
            positions=positions,
        )
        if state is not None:
            state.offset += length
        logits = self.output(x)
        if return_attention:
            return logits, [m["self"] for m in maps]
        if return_hidden:
            return logits, hidden
        return logits


@ARCHITECTURES.register("decoder", aliases=("decoder_only",))
class DecoderOnly(LanguageModel):
    """Decoder-only language model: causal self-attention over one sequence (Radford et al. 2018,
    "Improving Language Understanding by Generative Pre-Training"; GPT)."""


@ARCHITECTURES.register("encoder", aliases=("encoder_only",))
class EncoderOnly(LanguageModel):
    """Encoder-only model: bidirectional self-attention, trained by masked-token prediction
    (Devlin et al. 2019, "BERT")."""


@ARCHITECTURES.register("encoder_decoder", aliases=("seq2seq",))
class EncoderDecoder(TransformerBase):
    """Encoder-decoder with cross-attention (Vaswani et al. 2017, "Attention Is All You Need").

    Source and target share one vocabulary and one embedding matrix (and, tied, the output)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.encoder_mask: AttentionMask = MASKS.build("bidirectional")
        self.mask: AttentionMask = MASKS.build(config.resolved_mask(), key="model.mask")
        self.encoder_position = self._position(causal=False)
        self.position = self._position(causal=True)
        self.encoder = self._stack("encoder", config.layers)
        self.decoder = self._stack("decoder", config.decoder_layers or config.layers, cross=True)
        self.initialisation.initialise(self)

    def named_stacks(self) -> list[tuple[str, Stack]]:
        return [("encoder", self.encoder), ("decoder", self.decoder)]

    def encode(self, source: Tensor, padding: Tensor | None = None, *,
               return_attention: bool = False, return_hidden: bool = False):
        """The encoder's output (the decoder's memory). With `return_attention` or
        `return_hidden`: `(memory, attentions)` / `(memory, hidden)`, hidden being the
        embedding output then each encoder block's output."""
        positions = self._positions(self.encoder_position, 0, source.shape[1], source.device)
        x = self._embed(source, self.encoder_position, positions)
        attn_mask, is_causal = attention_plan(
            self.encoder_mask, self.encoder_position, positions, positions, key_padding=padding,
            dtype=x.dtype,
        )
        hidden = [x] if return_hidden else None
        memory, maps = self.encoder(
            x, need_weights=return_attention, hidden=hidden, attn_mask=attn_mask,
            is_causal=is_causal, position=self.encoder_position, positions=positions,
        )
        if return_attention:
            return memory, [m["self"] for m in maps]
        return (memory, hidden) if return_hidden else memory

    def new_state(self, memory: Tensor, padding: Tensor | None = None) -> DecodingState:
        blocks = self.decoder.blocks
        return DecodingState(caches=[KVCache() for _ in blocks],
                             cross_caches=[StaticKV() for _ in blocks], memory=memory,
                             memory_padding=padding)

    def decode(self, target: Tensor, memory: Tensor, padding: Tensor | None = None, *,
               state: DecodingState | None = None, return_attention: bool = False):
        offset = state.offset if state is not None else 0
        length = target.shape[1]
        positions = self._positions(self.position, offset, offset + length, target.device)
        k_positions = torch.arange(0, offset + length, device=target.device)
        x = self._embed(target, self.position, positions)
        attn_mask, is_causal = attention_plan(
            self.mask, self.position, positions, k_positions, dtype=x.dtype
        )
        memory_mask = None if padding is None else padding[:, None, None, :]
        x, maps = self.decoder(
            x, caches=state.caches if state else None,
            cross_caches=state.cross_caches if state else None, need_weights=return_attention,
            attn_mask=attn_mask, is_causal=is_causal, position=self.position,
            positions=positions, memory=memory, memory_mask=memory_mask,
        )
        if state is not None:
            state.offset += length
        logits = self.output(x)
        return (logits, maps) if return_attention else logits

    def forward(self, source: Tensor, target: Tensor, *, source_padding: Tensor | None = None,
                return_attention: bool = False):
        """Logits for every target position (teacher forcing). `source_padding`: True = real."""
        if return_attention:
            memory, encoder_maps = self.encode(source, source_padding, return_attention=True)
            logits, maps = self.decode(target, memory, source_padding, return_attention=True)
            return logits, {
                "encoder": encoder_maps,
                "decoder": [m["self"] for m in maps],
                "cross": [m["cross"] for m in maps],
            }
        memory = self.encode(source, source_padding)
        return self.decode(target, memory, source_padding)


def build_model(config: ModelConfig | dict, *, task_supplies_prefix: bool = False) -> nn.Module:
    """Validate `config` (names, sizes, combination rules) and build the model it describes."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    config.validate(task_supplies_prefix=task_supplies_prefix)
    architecture = ARCHITECTURES.get(config.variant("arch")[0], key="model.arch")
    return architecture(config)
