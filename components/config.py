"""`ModelConfig`: everything that defines a model, as plain data (what the YAML `model:` holds).

Variant fields take a name or a mapping ``{name: ..., **arguments}``; `validate()` checks every
name against its registry and every combination rule the variants declare, so a bad experiment
fails before anything trains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, unknown_choice
from .families import MASKS, MODEL_SUPPLIED, VARIANT_FIELDS
from .registry import split_spec

Spec = str | dict


@dataclass
class ModelConfig:
    """One transformer, decoder-only, encoder-only or encoder-decoder."""

    arch: str = "decoder"
    vocab_size: int = 256
    d_model: int = 128
    layers: int = 4
    #: encoder-decoder only: decoder depth (default: `layers`)
    decoder_layers: int | None = None
    heads: int = 4
    attention: Spec = "mha"
    #: None: the architecture's own (causal for a decoder, bidirectional for an encoder)
    mask: Spec | None = None
    position: Spec = "learned"
    #: longest sequence the model must represent (learned positions need it)
    max_len: int | None = None
    norm: Spec = "layernorm"
    placement: Spec = "pre"
    residual: Spec = "add"
    ffn: Spec = "gelu"
    ffn_mult: float = 4.0
    output: Spec = "tied"
    #: how the weights start and the embeddings are scaled (components/initialisation.py)
    init: Spec = "gpt2"
    dropout: float = 0.0
    bias: bool = True
    init_std: float = 0.02
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, prefix: str = "model") -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls) if f.name != "extra"}
        for key in values:
            if key not in names:
                raise ConfigError(unknown_choice("model field", key, names), key=f"{prefix}.{key}")
        config = cls(**dict(values))
        config.check_types(prefix=prefix)
        return config

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values.pop("extra")
        return values

    def check_types(self, *, prefix: str = "model") -> None:
        positive_ints = ["vocab_size", "d_model", "layers", "heads"]
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}",
                                  key=f"{prefix}.{name}")
        for name in ("decoder_layers", "max_len"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"must be a positive integer or null, got {value!r}",
                                  key=f"{prefix}.{name}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"must be a number in [0, 1), got {self.dropout!r}",
                              key=f"{prefix}.dropout")
        if not isinstance(self.ffn_mult, (int, float)) or self.ffn_mult <= 0:
            raise ConfigError(f"must be a positive number, got {self.ffn_mult!r}",
                              key=f"{prefix}.ffn_mult")

    def resolved_mask(self) -> Spec:
        if self.mask is not None:
            return self.mask
        return "bidirectional" if self.arch == "encoder" else "causal"

    def resolved_mask_name(self) -> str:
        return MASKS.resolve(split_spec(self.resolved_mask())[0])

    def variant(self, field_name: str) -> tuple[str, dict]:
        """(registered name, arguments) of a variant field."""
        spec = self.resolved_mask() if field_name == "mask" else getattr(self, field_name)
        name, arguments = split_spec(spec, key=f"model.{field_name}")
        return VARIANT_FIELDS[field_name].resolve(name, key=f"model.{field_name}"), arguments

    def validate(self, *, task_supplies_prefix: bool = False, prefix: str = "model") -> None:
        """Check names, sizes and combination rules; raise `ConfigError` naming the field."""
        self.check_types(prefix=prefix)
        if self.d_model % self.heads:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0][:12]
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by heads ({self.heads}); heads that "
                f"divide it: {', '.join(map(str, divisors))}",
                key=f"{prefix}.heads",
            )
        for field_name, registry in VARIANT_FIELDS.items():
            try:
                name, arguments = self.variant(field_name)
            except ConfigError as error:
                raise error.located(key=f"{prefix}.{field_name}") from None
            # unknown arguments are caught here, before anything is built, field named
            registry.check_arguments(name, arguments, supplied=MODEL_SUPPLIED[field_name],
                                     key=f"{prefix}.{field_name}")
            variant = registry.get(name)
            check = getattr(variant, "check", None)
            if callable(check):
                try:
                    check(self, task_supplies_prefix=task_supplies_prefix, **arguments)
                except ConfigError as error:
                    raise error.located(key=f"{prefix}.{field_name}") from None
        if self.arch == "encoder_decoder" and self.resolved_mask_name() != "causal":
            raise ConfigError(
                "an encoder-decoder's decoder must not see future targets (its source is "
                "already read bidirectionally by the encoder); allowed mask: causal",
                key=f"{prefix}.mask",
            )
