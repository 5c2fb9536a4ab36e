"""`synthetic:TASK`: diagnostic tasks (copy, reverse, recall, induction, dyck) from a seeded
generator, with a longer `test_long` split for length generalisation."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tzoo.components.errors import ConfigError, unknown_choice

from .corpus import CORPUS_KEY
from .loading import corpus_kind
from .options import option, split_sizes
from .splits import Rows

SYNTHETIC_TASKS = ("copy", "reverse", "recall", "induction", "dyck")
SYMBOLS = string.ascii_letters  # single characters, so the char tokenizer sees one id each
BRACKETS = ("()", "[]", "{}", "<>")


@corpus_kind("synthetic", generated=True)
def load_synthetic(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    """Diagnostic tasks from a seeded generator: the same seed and options give the same data."""
    if rest not in SYNTHETIC_TASKS:
        raise ConfigError(unknown_choice("synthetic task", rest, SYNTHETIC_TASKS), key=CORPUS_KEY)
    if rest == "induction" and task != "lm":
        raise ConfigError(
            "synthetic:induction is an LM task; for translation use one of: copy, dyck, "
            "recall, reverse",
            key=CORPUS_KEY,
        )
    vocab = option(options, "vocab", 16)
    if not 2 <= vocab <= len(SYMBOLS):
        raise ConfigError(
            f"vocab must be between 2 and {len(SYMBOLS)} (one letter per symbol), got {vocab}",
            key="data.options.vocab",
        )
    length = option(options, "length", 16)
    long_length = option(options, "long_length", 2 * length)
    if length < 2 or long_length < length:
        raise ConfigError(
            f"need length >= 2 and long_length >= length, got {length} and {long_length}",
            key="data.options.length",
        )
    # `min_length` draws each example's length from [min_length, length]: with a varying
    # period, a copy cannot be found at a fixed offset, only by content (real induction).
    min_length = option(options, "min_length", length)
    if not 1 <= min_length <= length:
        raise ConfigError(f"need 1 <= min_length <= length, got {min_length} and {length}",
                          key="data.options.min_length")
    sizes = split_sizes(
        options, {"train": 10_000, "validation": 500, "test": 500, "test_long": 500}
    )
    make = _SYNTHETIC[rest]
    out: dict[str, Rows] = {}
    for index, (split, n) in enumerate(sizes.items()):
        # One generator per split, seeded by (seed, split index): splits do not depend on
        # each other's sizes, so growing train leaves validation unchanged.
        rng = np.random.default_rng([seed, index, SYNTHETIC_TASKS.index(rest)])
        n_symbols = long_length if split == "test_long" else length
        if min_length == length:
            pairs = [make(rng, vocab, n_symbols, options) for _ in range(n)]
        else:
            shortest = length + 1 if split == "test_long" and long_length > length else min_length
            lengths = rng.integers(shortest, n_symbols + 1, size=n)
            pairs = [make(rng, vocab, int(k), options) for k in lengths]
        if task == "lm":
            joiner = "" if rest == "induction" else "="
            out[split] = {"text": [s + joiner + t for s, t in pairs]}
        else:
            out[split] = {"source": [s for s, _ in pairs], "target": [t for _, t in pairs]}
    return out


def _symbols(rng: np.random.Generator, vocab: int, n: int) -> str:
    return "".join(SYMBOLS[i] for i in rng.integers(0, vocab, size=n))


def _copy(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    s = _symbols(rng, vocab, n)
    return s, s


def _reverse(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    s = _symbols(rng, vocab, n)
    return s, s[::-1]


def _induction(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    """LM text = s + s: the second half is predictable only by copying from the first. With
    `distinct: true` no symbol repeats inside s, so every symbol of the copy has exactly one
    earlier occurrence to continue from (with repeats inside s, "the symbol after its last
    occurrence" is often the wrong one, and copying is ambiguous)."""
    if not options.get("distinct", False):
        s = _symbols(rng, vocab, n)
        return s, s
    if n > vocab:
        raise ConfigError(
            f"distinct symbols: a sequence of {n} needs vocab >= {n}, got {vocab}",
            key="data.options.vocab")
    s = "".join(SYMBOLS[i] for i in rng.permutation(vocab)[:n])
    return s, s


def _recall(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    """Associative recall: "a1b2c3" + query "b" -> "2". `length` counts characters, so
    length // 2 distinct keys (letters) with digit values."""
    n_pairs = max(1, n // 2)
    if n_pairs > vocab:
        raise ConfigError(
            f"recall with length {n} needs {n_pairs} distinct keys but vocab is {vocab}; "
            f"use length <= {2 * vocab} (long_length too) or a larger vocab",
            key="data.options.length",
        )
    keys = rng.choice(vocab, size=n_pairs, replace=False)
    values = rng.integers(0, 10, size=n_pairs)
    query = int(rng.integers(0, n_pairs))
    source = "".join(f"{SYMBOLS[k]}{v}" for k, v in zip(keys, values, strict=True))
    return source + SYMBOLS[keys[query]], str(values[query])


def _dyck(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    """A length-n prefix of a balanced string over `brackets` types; target closes it."""
    kinds = option(options, "brackets", 2)
    if not 1 <= kinds <= len(BRACKETS):
        raise ConfigError(
            f"brackets must be between 1 and {len(BRACKETS)}, got {kinds}",
            key="data.options.brackets",
        )
    stack: list[int] = []
    prefix = []
    for i in range(n):
        last = i == n - 1
        # Close with probability 1/2 when something is open, but never empty the stack on the
        # last symbol: the target (the closing sequence) must not be empty.
        if stack and not (last and len(stack) == 1) and rng.random() < 0.5:
            prefix.append(BRACKETS[stack.pop()][1])
        else:
            k = int(rng.integers(0, kinds))
            stack.append(k)
            prefix.append(BRACKETS[k][0])
    closing = "".join(BRACKETS[k][1] for k in reversed(stack))
    return "".join(prefix), closing


_SYNTHETIC: dict[str, Callable[..., tuple[str, str]]] = {
    "copy": _copy,
    "reverse": _reverse,
    "recall": _recall,
    "induction": _induction,
    "dyck": _dyck,
}
