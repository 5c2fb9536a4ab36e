"""Which way is better for a metric, decided from its name alone.

Every table, plot and comparison in the reports asks this one question, so the rule lives in
one place: losses and perplexities go down, translation and accuracy scores go up.
"""

from __future__ import annotations

import math

# Substrings, not exact names, so that "val/loss@2x", "test/ppl" and "val/bpc" all match.
_LOWER_IS_BETTER = ("loss", "ppl", "bpc")
_HIGHER_IS_BETTER = ("bleu", "chrf", "exact_match", "accuracy")


def lower_is_better(metric: str) -> bool | None:
    """True if smaller values of `metric` are better, False if larger are, None if unknown."""
    name = metric.lower()
    if any(key in name for key in _LOWER_IS_BETTER):
        return True
    if any(key in name for key in _HIGHER_IS_BETTER):
        return False
    return None


def direction_word(metric: str) -> str:
    """'lower is better', 'higher is better' or 'direction unknown', for captions."""
    lower = lower_is_better(metric)
    if lower is None:
        return "direction unknown"
    return "lower is better" if lower else "higher is better"


def better(metric: str, a: float | None, b: float | None) -> int | None:
    """-1 if `a` is better, 1 if `b` is, 0 on a tie, None when undecidable.

    Undecidable means an unknown direction or a missing/NaN value on either side.
    """
    lower = lower_is_better(metric)
    if lower is None or a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    if a == b:
        return 0
    a_wins = a < b if lower else a > b
    return -1 if a_wins else 1
