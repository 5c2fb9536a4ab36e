"""Statistics across seeds: mean, spread, confidence interval and a test against the base.

Each variant is trained with a handful of seeds, so everything here is small-sample
statistics: the sample standard deviation (ddof=1), a Student-t 95% confidence interval for
the mean and Welch's t-test (no equal-variance assumption) for the difference to the base.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from .runs import Run, VariantGroup

CONFIDENCE = 0.95
TEST_NAME = "Welch's t-test"
TEST_DESCRIPTION = (
    "Δ vs base is the variant mean minus the base mean; p is from Welch's t-test "
    "(two-sided, unequal variances: scipy.stats.ttest_ind with equal_var=False) across seeds. "
    "It needs at least two seeds on both sides, otherwise it reads 'n/a (one seed)'. "
    "95% CI is the Student-t confidence interval of the mean over seeds. Every number in a "
    "table has four significant digits, p-values two."
)
ONE_SEED = "n/a (one seed)"
NO_BASE = "n/a (no base)"
BASE_NA = "n/a (not applicable to base)"
REFERENCE_NA = "n/a (not applicable to its reference)"
NO_REFERENCE_RUN = "n/a (no run of its reference)"
NO_SPREAD = "n/a (no spread)"

# The metrics most reports are about come first; the rest follow alphabetically, with the
# context-length extrapolation metrics (val/loss@2x ...) ordered by their multiplier.
_PREFERRED = ("val/loss", "val/ppl", "val/bpc", "test/loss", "test/bleu", "val/bleu")
_AT_MULTIPLE = re.compile(r"^(.*)@([0-9.]+)x$")


@dataclass(frozen=True)
class Summary:
    """Mean, spread and CI of one metric over the seeds of one variant."""

    n: int
    mean: float
    std: float  # NaN with one seed: a spread needs two values
    ci_low: float
    ci_high: float  # NaN with one seed


@dataclass(frozen=True)
class Delta:
    """A variant minus the base, with the p-value or why there is none."""

    diff: float
    relative: float | None  # diff / |base mean|; None when the base mean is 0
    p_value: float | None
    note: str | None  # set exactly when p_value is None


@dataclass(frozen=True)
class MetricRow:
    """One variant's line in a comparison table for one metric."""

    variant: str
    is_base: bool  # an anchor of comparisons: the base, or a cell of the reference
    summary: Summary | None  # None when no completed run reported the metric
    delta: Delta | None  # None for the anchors themselves and when there is nothing to compare


def finite(values: Iterable[float | None]) -> list[float]:
    """Drop None (metric not applicable) and NaN/inf (diverged) values."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def summarise(values: Iterable[float | None]) -> Summary | None:
    """n, mean, sample std (ddof=1) and Student-t 95% CI; None when there are no values."""
    data = np.asarray(finite(values), dtype=float)
    n = len(data)
    if n == 0:
        return None
    mean = float(data.mean())
    if n < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(data.std(ddof=1))
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def _no_spread(values: Sequence[float]) -> bool:
    """All equal, up to floating-point rounding."""
    return float(np.ptp(values)) <= 1e-9 * max(1.0, float(np.max(np.abs(values))))


def welch(variant: Sequence[float], base: Sequence[float]) -> Delta:
    """Difference of means and Welch's t-test p-value between two sets of seeds."""
    a, b = finite(variant), finite(base)
    diff = float(np.mean(a) - np.mean(b))
    base_mean = float(np.mean(b))
    relative = diff / abs(base_mean) if base_mean != 0 else None
    if len(a) < 2 or len(b) < 2:
        return Delta(diff, relative, None, ONE_SEED)
    if _no_spread(a) and _no_spread(b):
        # Identical seeds on both sides (e.g. a deterministic task, or an exact-match rate of
        # 1.0 give or take rounding): t is undefined, or noise.
        return Delta(diff, relative, None, NO_SPREAD)
    with warnings.catch_warnings():
        # One side with no spread is a valid Welch test, about which scipy still warns.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.ttest_ind(a, b, equal_var=False)
    p = float(result.pvalue)
    if not math.isfinite(p):
        return Delta(diff, relative, None, NO_SPREAD)
    return Delta(diff, relative, p, None)


def metric_values(runs: Iterable[Run], metric: str) -> list[float]:
    """The metric's final values over completed runs, skipping N/A and non-finite ones."""
    return finite(r.metrics.get(metric) for r in runs if r.completed)


def order_metrics(names: Iterable[str]) -> list[str]:
    """Preferred metrics first, then alphabetical, @Nx metrics sorted by their multiple."""

    def key(name: str) -> tuple[int, str, float]:
        rank = _PREFERRED.index(name) if name in _PREFERRED else len(_PREFERRED)
        match = _AT_MULTIPLE.match(name)
        if match:
            return (rank, match.group(1) + "@", float(match.group(2)))
        return (rank, name, 0.0)

    return sorted(set(names), key=key)


#: names of one quantity in different units: the loss and its monotone transforms
#: (perplexity = e^loss; bits per character or byte = loss / ln 2 / characters per token)
TRANSFORMS = ("loss", "ppl", "bpc", "bpb")


def transform_families(metrics: Sequence[str]) -> list[list[str]]:
    """`metrics` in order, with the loss of a split and its monotone transforms gathered into
    one family led by the loss (`[val/loss, val/ppl, val/bpc]`); every other metric alone.
    A family shares one table: its ranking, CI and test are the loss's."""
    families: list[list[str]] = []
    by_split: dict[str, list[str]] = {}
    for metric in metrics:
        split, _, name = metric.rpartition("/")
        if name not in TRANSFORMS or "@" in metric:
            families.append([metric])
            continue
        if split not in by_split:
            by_split[split] = []
            families.append(by_split[split])
        by_split[split].append(metric)
    for family in families:
        family.sort(key=lambda m: TRANSFORMS.index(m.rpartition("/")[2])
                    if m.rpartition("/")[2] in TRANSFORMS and "@" not in m else 0)
    return families


def metric_names(runs: Iterable[Run]) -> list[str]:
    """Every metric some completed run reported a value for, in report order."""
    names = {
        name for r in runs if r.completed for name, v in r.metrics.items() if v is not None
    }
    return order_metrics(names)


def compare_metric(groups: Sequence[VariantGroup], metric: str) -> list[MetricRow]:
    """One row per variant for `metric`: its summary and its difference to its reference
    (`group.reference`: the base, or its cell of an `ablate.reference`)."""
    anchored = any(g.is_reference for g in groups)
    rows = []
    for group in groups:
        values = metric_values(group.runs, metric)
        summary = summarise(values)
        delta = None
        if summary is not None and not group.is_reference:
            reference = metric_values(group.reference.runs, metric) if group.reference else []
            if reference:
                delta = welch(values, reference)
            elif group.reference is None:
                delta = Delta(math.nan, None, None, NO_REFERENCE_RUN if anchored else NO_BASE)
            else:
                why = BASE_NA if group.reference.is_base else REFERENCE_NA
                delta = Delta(math.nan, None, None, why)
        rows.append(MetricRow(group.name, group.is_reference, summary, delta))
    return rows


def mean_of(values: Iterable[float | None]) -> float | None:
    """Mean of the finite values, None if there are none (for cost columns)."""
    data = finite(values)
    return float(np.mean(data)) if data else None
