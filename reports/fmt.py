"""Number formatting shared by the markdown, HTML and terminal outputs.

One place so that a mean printed in the table and the same mean in a comparison look alike
(the tests rely on this too).
"""

from __future__ import annotations

import math

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
    return f"{value:#.{digits}g}" if zeros else f"{value:.{digits}g}"


def signed(value: float, digits: int = 3) -> str:
    """A difference with an explicit sign: '+0.123', '−0.123' (typographic minus)."""
    if math.isnan(value):
        return "nan"
    text = f"{value:+.{digits}g}"
    return text.replace("-", "−")


def mean_std(summary: Summary | None) -> str:
    """'1.234 ± 0.05678' (or just the mean with one seed)."""
    if summary is None:
        return DASH
    if summary.n < 2:
        return num(summary.mean)
    return f"{num(summary.mean)} ± {num(summary.std)}"


def ci(summary: Summary | None) -> str:
    """'[1.2, 1.3]' or an em dash when a CI needs more seeds."""
    if summary is None or summary.n < 2:
        return DASH
    return f"[{num(summary.ci_low)}, {num(summary.ci_high)}]"


def p_value(p: float) -> str:
    """p-values: small ones in scientific notation, never a bare 0."""
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def delta(d: Delta | None) -> tuple[str, str]:
    """(Δ text, p text) for a table: '−0.12 (−5.1%)', 'p = 0.031' or the reason there is none."""
    if d is None:
        return DASH, DASH
    if math.isnan(d.diff):
        return DASH, d.note or DASH
    rel = f" ({signed(100 * d.relative, 2)}%)" if d.relative is not None else ""
    text = f"{signed(d.diff)}{rel}"
    return text, (p_value(d.p_value) if d.p_value is not None else (d.note or DASH))


def count(value: float | None) -> str:
    """Parameter counts and similar: 1.23M, 45.6k, 789."""
    if value is None or math.isnan(value):
        return DASH
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def duration(seconds: float | None) -> str:
    """Wall time: '42.0 s', '3 min 05 s', '1 h 02 min'."""
    if seconds is None or math.isnan(seconds):
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
