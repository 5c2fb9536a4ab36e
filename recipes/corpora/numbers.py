"""`numbers:PAIR`: numbers written in words (num2words) or digits, as translation pairs or
"source = target" LM lines, with larger numbers held out as `test_long`."""

from __future__ import annotations

from typing import Any

import numpy as np

from tzoo.components.errors import ConfigError, unknown_choice

from .corpus import CORPUS_KEY
from .loading import corpus_kind
from .options import option, split_sizes
from .splits import Rows

NUMBER_PAIRS = ("en-de", "en-fr", "digits-en")


@corpus_kind("numbers", generated=True)
def load_numbers(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    """Number words via num2words; train/validation/test from disjoint values in
    [0, max_value], test_long from (max_value, long_max_value] for length generalisation."""
    from num2words import num2words

    if rest not in NUMBER_PAIRS:
        raise ConfigError(unknown_choice("number pair", rest, NUMBER_PAIRS), key=CORPUS_KEY)
    max_value = option(options, "max_value", 9999)
    long_max = option(options, "long_max_value", 10 * max_value + 9)
    sizes = split_sizes(options, {"train": 8000, "validation": 500, "test": 500, "test_long": 500})
    short_total = sizes["train"] + sizes["validation"] + sizes["test"]
    if short_total > max_value + 1:
        raise ConfigError(
            f"train+validation+test = {short_total} numbers do not fit in [0, {max_value}]; "
            "raise max_value or lower samples",
            key="data.options.max_value",
        )
    if sizes["test_long"] > long_max - max_value:
        raise ConfigError(
            f"test_long needs {sizes['test_long']} numbers in ({max_value}, {long_max}]; "
            "raise long_max_value",
            key="data.options.long_max_value",
        )
    rng = np.random.default_rng([seed, 7])
    short = rng.permutation(max_value + 1)
    # Validation and test first, so their values do not change when train grows.
    values = {
        "validation": short[: sizes["validation"]],
        "test": short[sizes["validation"] : sizes["validation"] + sizes["test"]],
        "train": short[sizes["validation"] + sizes["test"] : short_total],
        "test_long": max_value + 1 + rng.choice(long_max - max_value, sizes["test_long"], False),
    }
    src_lang, tgt_lang = rest.split("-")

    def say(n: int, lang: str) -> str:
        return str(n) if lang == "digits" else num2words(n, lang=lang)

    out: dict[str, Rows] = {}
    for split in ("train", "validation", "test", "test_long"):
        numbers = [int(v) for v in values[split]]
        src = [say(n, src_lang) for n in numbers]
        tgt = [say(n, tgt_lang) for n in numbers]
        if task == "lm":
            out[split] = {"text": [s + " = " + t for s, t in zip(src, tgt, strict=True)]}
        else:
            out[split] = {"source": src, "target": tgt}
    return out
