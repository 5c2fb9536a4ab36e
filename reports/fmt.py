"""Number formatting shared by the markdown, HTML and terminal outputs.

One place so that a mean printed in the table and the same mean in a comparison look alike
(the tests rely on this too).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .stats import Delta, Summary

DASH = "—"


def num(value: float | None, digits: int = 4, *, zeros: bool = True) -> str:
    """A value with `digits` significant digits; an em dash for missing, 'nan' for NaN.

    Trailing zeros are kept by default ('3.000', not '3') so that a column of means reads
    at one precision; `zeros=False` drops them for counts and sizes.
    """
    if value is None:
        return DASH
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    # ('#' keeps the zeros, and a trailing point too: 1234. is 1234)
    return f"{value:#.{digits}g}".removesuffix(".") if zeros else f"{value:.{digits}g}"


#: significant digits of every measured number in a results table (p-values: P_DIGITS), so
#: a column reads at one precision and no number claims more than its neighbours
TABLE_DIGITS = 4
P_DIGITS = 2


def sig(value: float, digits: int = TABLE_DIGITS) -> str:
    """Exactly `digits` significant digits, trailing zeros kept: 34.70, 0.008916, 1234."""
    return num(value, digits)


def signed(value: float, digits: int = 3, *, zeros: bool = False) -> str:
    """A difference with an explicit sign: '+0.123', '−0.123' (typographic minus); `zeros`
    keeps trailing zeros ('+0.1200'), as a table column does."""
    if math.isnan(value):
        return "nan"
    text = f"{value:+#.{digits}g}".removesuffix(".") if zeros else f"{value:+.{digits}g}"
    return text.replace("-", "−")


def mean_std(summary: Summary | None, digits: int = TABLE_DIGITS) -> str:
    """'1.234 ± 0.05678' (or just the mean with one seed)."""
    if summary is None:
        return DASH
    if summary.n < 2:
        return num(summary.mean, digits)
    return f"{num(summary.mean, digits)} ± {num(summary.std, digits)}"


def over_seeds(values: Sequence[float], digits: int = 3) -> str:
    """'0.123 ± 0.004': the mean and standard deviation of one number over seeds, at a fixed
    number of decimals ('0.123' for one seed)."""
    mean = float(statistics.fmean(values))
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def ci(summary: Summary | None, digits: int = TABLE_DIGITS) -> str:
    """'[1.2, 1.3]' or an em dash when a CI needs more seeds."""
    if summary is None or summary.n < 2:
        return DASH
    return f"[{num(summary.ci_low, digits)}, {num(summary.ci_high, digits)}]"


def p_value(p: float, digits: int | None = None) -> str:
    """p-values: small ones in scientific notation, never a bare 0. With `digits`, every
    p-value has that many significant digits (0.015, 0.0010, 0.26, 5.0e-05)."""
    if digits is not None:
        return f"{p:.{digits - 1}e}" if p < 1e-4 else sig(p, digits)
    if p < 1e-4:
        return f"{p:.1e}"
    if p < 1e-3:  # three decimals would print 0.000
        return sig(p, 2)
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def delta(d: Delta | None, digits: int | None = None) -> tuple[str, str]:
    """(Δ text, p text) for a table: '−0.12 (−5.1%)', 'p = 0.031' or the reason there is none.
    With `digits`, the difference and the percentage have that many significant digits and
    the p-value `P_DIGITS`."""
    if d is None:
        return DASH, DASH
    if math.isnan(d.diff):
        return DASH, d.note or DASH
    if digits is None:
        rel = f" ({signed(100 * d.relative, 2)}%)" if d.relative is not None else ""
        text = f"{signed(d.diff)}{rel}"
        p = p_value(d.p_value) if d.p_value is not None else None
    else:
        rel = (f" ({signed(100 * d.relative, digits, zeros=True)}%)"
               if d.relative is not None else "")
        text = f"{signed(d.diff, digits, zeros=True)}{rel}"
        p = p_value(d.p_value, P_DIGITS) if d.p_value is not None else None
    return text, (p if p is not None else (d.note or DASH))


def count(value: float | None, digits: int | None = None) -> str:
    """Parameter counts and similar: 1.23M, 45.6k, 789 (with `digits`: exactly that many
    significant digits, 87.00k)."""
    if value is None or math.isnan(value):
        return DASH
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            shown = sig(value / scale, digits) if digits else f"{value / scale:.3g}"
            return f"{shown}{suffix}"
    return sig(value, digits) if digits else f"{value:.0f}"


def duration(seconds: float | None, digits: int | None = None) -> str:
    """Wall time: '42.0 s', '3 min 05 s', '1 h 02 min'; with `digits`, one unit and that many
    significant digits: '42.00 s', '3.083 min', '1.033 h'."""
    if seconds is None or math.isnan(seconds):
        return DASH
    if digits is not None:
        for scale, unit in ((3600, "h"), (60, "min")):
            if seconds >= scale:
                return f"{sig(seconds / scale, digits)} {unit}"
        return f"{sig(seconds, digits)} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
