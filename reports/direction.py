"""Which way is better for a metric, decided from its name alone.

Every table, plot and comparison in the reports asks this one question; the rule itself
(losses and perplexities go down, translation and accuracy scores go up) lives with the other
rules about metric names in `recipes/metrics.py`, where sweeps read it too.
"""

from __future__ import annotations

import math

from tzoo.recipes.metrics import lower_is_better

__all__ = ["better", "direction_word", "lower_is_better"]


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
