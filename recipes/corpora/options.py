"""Reading a corpus's `data.options`: typed values whose errors name the option's key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tzoo.components.errors import ConfigError, unknown_choice


def option(options: Mapping[str, Any], name: str, default: Any, kind: type = int) -> Any:
    """Read one option with a type check whose error names the key."""
    value = options.get(name, default)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected {kind.__name__}, got {value!r}", key=f"data.options.{name}"
        ) from None


def train_fraction(options: Mapping[str, Any]) -> float:
    """Option `train_fraction` (default 0.9) for corpora that ship without splits."""
    fraction = option(options, "train_fraction", 0.9, float)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"train_fraction must be in (0, 1), got {fraction}", key="data.options.train_fraction"
        )
    return fraction


def split_sizes(options: Mapping[str, Any], defaults: dict[str, int]) -> dict[str, int]:
    """Rows per split from option `samples`: an int (train only) or a {split: n} mapping."""
    value = options.get("samples")
    sizes = dict(defaults)
    if isinstance(value, Mapping):
        unknown = set(value) - set(defaults)
        if unknown:
            word = sorted(unknown)[0]
            raise ConfigError(unknown_choice("split", word, defaults), key="data.options.samples")
        sizes.update({k: int(v) for k, v in value.items()})
    elif value is not None:
        sizes["train"] = option(options, "samples", None)
    for name, n in sizes.items():
        if n < 0 or (name in ("train", "validation") and n == 0):
            raise ConfigError(
                f"split '{name}' needs a positive number of samples, got {n}",
                key="data.options.samples",
            )
    return sizes
