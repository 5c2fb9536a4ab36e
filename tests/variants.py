"""The component families as the tests see them: every variant list and every variant's
arguments, read from the registries.

Family-wide tests parametrise over `names(field)` / `combinations(*fields)` and build their
models through `model_config`, which gives each variant named bare the example arguments its
class declares for that model (`example_arguments`, see components/registry.py). So a new
variant is picked up by every family-wide test by writing its class, and nothing else
(tests/test_components_new_variant.py shows it).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from tzoo.components import ModelConfig
from tzoo.components.families import VARIANT_FIELDS

#: the `ModelConfig` fields that name a variant, in the config's order
FIELDS: tuple[str, ...] = tuple(VARIANT_FIELDS)

#: Pairs of variants that no model may combine, refused by validation on purpose (keyed as
#: sorted ((field, name), (field, name)) pairs). test_components_grid checks that these are
#: exactly the pairs no valid model holds; `combinations` leaves them out, so that anything
#: else a family-wide test cannot build fails it instead of vanishing from it.
REFUSED_PAIRS: set[tuple[tuple[str, str], tuple[str, str]]] = {
    # a bag-of-words model: nothing tells any order apart
    (("mask", "bidirectional"), ("position", "none")),
    # an encoder-decoder's decoder would see future targets
    (("arch", "encoder_decoder"), ("mask", "bidirectional")),
    (("arch", "encoder_decoder"), ("mask", "prefix")),
    # DeepNorm is post-LN: LN(α·x + f(x)) needs the norm after the sum, and a stream to scale
    (("init", "deepnet"), ("placement", "pre")),
    (("init", "deepnet"), ("placement", "sandwich")),
    (("init", "deepnet"), ("norm", "none")),
    (("init", "deepnet"), ("residual", "none")),
}


def model_config(**values: Any) -> ModelConfig:
    """A `ModelConfig` in which every variant given by bare name carries its example arguments
    for this very model (ALiBi is symmetric in an encoder, a prefix mask has a length, ...), and
    the fields `values` leave to their defaults take what a variant declares it needs beside it
    (`example_fields`: DeepNorm's post-LN). Mappings are kept as written, so a test that means a
    spec spells it out."""
    config = ModelConfig(**values)
    needed: dict[str, Any] = {}
    for field in FIELDS:
        if isinstance(getattr(config, field), str):
            needed |= VARIANT_FIELDS[field].example_fields(getattr(config, field), config)
    config = dataclasses.replace(
        config, **{field: value for field, value in needed.items() if field not in values})
    examples = {
        field: VARIANT_FIELDS[field].example(getattr(config, field), config)
        for field in FIELDS
        if isinstance(getattr(config, field), str)
    }
    return dataclasses.replace(config, **examples)


def chosen(config: ModelConfig) -> dict[str, str]:
    """The registered name of every variant field of `config` (the mask as the model resolves
    it, so an encoder's default counts as bidirectional)."""
    return {field: config.variant(field)[0] for field in FIELDS}


def refused(config: ModelConfig) -> bool:
    """Whether `config` holds one of the `REFUSED_PAIRS`."""
    choices = set(chosen(config).items())
    return any(set(pair) <= choices for pair in REFUSED_PAIRS)


def combinations(*fields: str, **fixed: Any) -> list[tuple[str, ...]]:
    """Every combination of the registered variants of `fields` (tuples in that order) that a
    model with the `fixed` values may hold: all but those with a refused pair."""
    rows = itertools.product(*(VARIANT_FIELDS[field].names() for field in fields))
    return [row for row in rows
            if not refused(model_config(**fixed, **dict(zip(fields, row, strict=True))))]


def names(field: str, **fixed: Any) -> list[str]:
    """The registered variants of `field`'s family; with `fixed` values, those a model with
    them may hold (`names("position", mask="bidirectional")` leaves out 'none')."""
    return [name for (name,) in combinations(field, **fixed)]
