"""Where a sweep's trials went: each trial at its two most important parameters, coloured by its
objective, so a reader sees the region that trains and the edge where it stops (post-LN's
learning rate that needs a longer warm-up), not only the best point."""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from tzoo.sweeps.results import StudyResult, TrialResult

from .plots import _new, _save

#: the objective's colour scale ends at this quantile of the completed trials: a few collapsed
#: trials (a loss of 3.35 against 2.0-2.5 for the rest) would otherwise flatten every other
#: trial into one colour; the ones above share the end colour and are labelled with their value
COLOUR_QUANTILE = 0.8


def _numeric(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def landscape_axes(study: StudyResult) -> tuple[str, str] | None:
    """The two parameters to plot: the most important of those every trial set to a number
    (importance order, else the order the trials name them); None with fewer than two."""
    trials = [t for t in study.trials if t.params]
    if not trials:
        return None
    names = [k for k in trials[0].params if all(_numeric(t.params.get(k)) for t in trials)]
    order = list(study.importances or {})
    names.sort(key=lambda k: order.index(k) if k in order else len(order))
    return (names[0], names[1]) if len(names) >= 2 else None


def _last_report(trial: TrialResult) -> float | None:
    """The last intermediate value a trial reported (the one a pruned trial was judged on)."""
    if not trial.intermediate:
        return None
    step = max(trial.intermediate, key=lambda k: float(k))
    return float(trial.intermediate[step])


def _label(ax: Axes, x: float, y: float, value: float, **style: str) -> None:
    """A trial's value beside its point."""
    ax.annotate(f"{value:.3g}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7,
                zorder=4, **style)


def _log_scale(values: list[float]) -> bool:
    """A log axis when the values are positive and span more than a factor of ten."""
    return min(values) > 0 and max(values) / min(values) > 10


def sweep_landscape(study: StudyResult, path: Path) -> Path | None:
    """A scatter of the trials over the two most important numeric parameters: completed
    trials coloured by their objective (each labelled with it), pruned ones as grey crosses
    labelled with the value they were pruned at, the best as a star; None when there are fewer
    than two numeric parameters or no completed trial."""
    axes_names = landscape_axes(study)
    done = [t for t in study.trials if t.state == "COMPLETE" and t.value is not None]
    if axes_names is None or not done:
        return None
    x_name, y_name = axes_names
    pruned = [t for t in study.trials if t.state == "PRUNED" and t.params]
    values = np.array([t.value for t in done], dtype=float)
    minimise = study.direction != "maximize"
    low, high = ((values.min(), np.quantile(values, COLOUR_QUANTILE)) if minimise
                 else (np.quantile(values, 1 - COLOUR_QUANTILE), values.max()))
    if high <= low:
        high = low + 1e-9
    # Better is darker either way: viridis runs dark to light, so a maximised objective flips it.
    cmap = colormaps["viridis" if minimise else "viridis_r"]
    norm = Normalize(low, high, clip=True)

    fig = _new(7.2, 5.0)
    ax = fig.subplots()

    def xy(trials: list[TrialResult]) -> tuple[list[float], list[float]]:
        return ([float(t.params[x_name]) for t in trials],
                [float(t.params[y_name]) for t in trials])

    xs, ys = xy(done)
    px, py = xy(pruned)
    points = ax.scatter(xs, ys, c=values, cmap=cmap, norm=norm, s=60, edgecolors="0.2",
                        linewidths=0.5, zorder=3, label="completed")
    for x, y, value in zip(xs, ys, values, strict=True):
        _label(ax, x, y, value)
    if pruned:
        ax.scatter(px, py, marker="x", s=50, color="0.45", zorder=3, label="pruned")
        for x, y, trial in zip(px, py, pruned, strict=True):
            last = _last_report(trial)
            if last is not None:  # the value it was pruned at: a collapse shows as one
                _label(ax, x, y, last, color="0.45", style="italic")
    best = study.best
    if best is not None and x_name in best.params and y_name in best.params:
        ax.scatter([best.params[x_name]], [best.params[y_name]], marker="*", s=320,
                   facecolors="none", edgecolors="crimson", linewidths=1.4, zorder=5,
                   label=f"best ({best.value:.4g})")
    if _log_scale(xs + px):
        ax.set_xscale("log")
    if _log_scale(ys + py):
        ax.set_yscale("log")
    objective = study.metric or "objective"
    fig.colorbar(points, ax=ax, label=objective, extend="max" if minimise else "min")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(f"Trials of '{study.name}' ({objective}; the worst "
                 f"{1 - COLOUR_QUANTILE:.0%} share the end colour)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
