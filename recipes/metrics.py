"""Metric names: how they are spelled, which way is better, and how a metric an experiment is
judged by (`eval.primary`, or its task's default) is found among the metrics runs recorded.

A recorded metric is `SPLIT/NAME`: `val/loss`, `test/bleu`, `test_long/exact_match`,
`val/loss@2x`. A metric an experiment is judged by may leave the split out (`exact_match`):
it then stands for that metric on every split that measured it, the test splits first (the
whole held-out set, decoded with beam search) and validation last (a few batches, greedy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: splits a judged-by metric may name (a test split may carry a suffix: `test_long`)
VALIDATION, TEST = "val", "test"

# Substrings, not exact names, so that "val/loss@2x", "test/ppl" and "val/bpc" all match.
_LOWER_IS_BETTER = ("loss", "ppl", "bpc", "bpb")
_HIGHER_IS_BETTER = ("bleu", "chrf", "exact_match", "accuracy")


def split_metric(metric: str) -> tuple[str | None, str]:
    """('test_long', 'exact_match') for 'test_long/exact_match'; (None, 'bleu') for 'bleu'."""
    split, slash, name = metric.rpartition("/")
    return (split, name) if slash else (None, metric)


def is_split(split: str) -> bool:
    """Whether `split` names a split evaluations are recorded under: val, test, test_<name>."""
    return split in (VALIDATION, TEST) or (split.startswith(f"{TEST}_") and len(split) > 5)


def lower_is_better(metric: str) -> bool | None:
    """True if smaller values of `metric` are better, False if larger are, None if unknown."""
    name = metric.lower()
    if any(key in name for key in _LOWER_IS_BETTER):
        return True
    if any(key in name for key in _HIGHER_IS_BETTER):
        return False
    return None


def _split_rank(split: str | None) -> tuple[int, str]:
    if split == TEST:
        return (0, "")
    if split is not None and split.startswith(f"{TEST}_"):
        return (1, split)
    if split == VALIDATION:
        return (2, "")
    return (3, split or "")


def resolve(leading: Sequence[str], present: Iterable[str]) -> list[str]:
    """The recorded metrics that `leading` (judged-by names, the first the primary) stands
    for, in order: a name with a split is itself; one without is every split's, test splits
    first. Names nothing recorded are left out."""
    present = list(dict.fromkeys(present))
    out: list[str] = []
    for wanted in leading:
        split, name = split_metric(wanted)
        if split is not None:
            found = [wanted] if wanted in present else []
        else:
            found = sorted((m for m in present if split_metric(m)[1] == name),
                           key=lambda m: _split_rank(split_metric(m)[0]))
        out += [m for m in found if m not in out]
    return out
