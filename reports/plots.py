"""Report figures, drawn with matplotlib's Agg backend straight to PNG files.

Figures are built with `matplotlib.figure.Figure` and an explicit Agg canvas rather than
pyplot, so plotting never touches global state or needs a display. Every function returns the
path it wrote, or None when there was nothing to draw (e.g. no @Nx metrics, no grad norms):
the report then simply has no such figure instead of an empty one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tzoo.sweeps.results import IMPORTANCE_METHOD, StudyResult

from .curves import band, grad_norm_layers, read_curves
from .direction import direction_word
from .runs import Run, VariantGroup
from .stats import metric_values, summarise

DPI = 110
_AT_MULTIPLE = re.compile(r"^(?P<base>.+)@(?P<mult>[0-9.]+)x$")
_PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]


#: one marker per round of the palette, so that variant 10 is told from variant 0 by its marker
#: where the colours repeat (a 30-variant sweep); the star is left out, it marks a tuned best
_ROUND_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "h"]


def color(index: int) -> str:
    """The variant's colour: the same index gives the same colour in every figure."""
    return _PALETTE[index % len(_PALETTE)]


def marker(index: int) -> str:
    """The variant's marker: a circle for the first ten variants, then one shape per further
    round of the palette, so (colour, marker) differs between any two of 80 variants."""
    return _ROUND_MARKERS[(index // len(_PALETTE)) % len(_ROUND_MARKERS)]


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


#: a legend with more entries than this goes below the panels, in columns: inside a panel, a
#: sweep's 36 variants covered every line and squeezed the axes to nothing
INSET_LEGEND_MAX = 12


def legend(fig: Figure, axes: Sequence[Axes], fontsize: float = 7) -> None:
    """Label the lines of every panel: a legend in each panel when the list is short, else one
    legend for the whole figure below its panels, the figure made taller to hold it."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if not entries:
        return
    if len(entries) <= INSET_LEGEND_MAX:
        for ax in axes:
            if ax.lines:
                ax.legend(fontsize=fontsize)
        return
    width, height = fig.get_size_inches()
    # A column is as wide as its longest label (about 0.55 em a character) plus the line sample.
    column = 0.55 * fontsize / 72 * max(map(len, entries)) + 0.6
    columns = max(1, min(len(entries), int(width // column)))
    rows = math.ceil(len(entries) / columns)
    fig.set_size_inches(width, height + rows * 1.45 * fontsize / 72 + 0.3)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center",
               ncols=columns, fontsize=fontsize)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


#: the validation loss on tokens seen earlier in their document (recipes/language_modeling.py)
REPEAT = "val/loss_repeat"


def _curves(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    # Cached per run id within one call: a metrics.csv is read once per figure at most.
    return {r.run_id: read_curves(r.metrics_csv) for r in runs}


def curve_panels(per_group: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The loss panels to draw: training and validation loss, and where runs split the
    validation loss into the tokens seen earlier in their document (`eval.repeat_loss`), the
    repeated tokens' loss, whose sudden fall is the phase change of an induction head."""
    panels = [("train/loss", "training loss"), ("val/loss", "validation loss")]
    if any(REPEAT in curves for group in per_group for curves in group.values()):
        panels.append((REPEAT, "validation loss, repeated tokens"))
    return panels


def loss_curves(groups: Sequence[VariantGroup], path: Path) -> Path | None:
    """Training and validation loss against step: mean over seeds with a min–max band.

    Runs that did not complete (diverged, interrupted) are drawn as thin dashed lines in their
    variant's colour: where a run blew up is part of the story.
    """
    per_group = [_curves(group.runs) for group in groups]
    panels = curve_panels(per_group)
    fig = _new(5.5 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels))
    drawn = False
    # Plain lines while every variant has its own colour; past that, markers along each line.
    repeats = len(groups) > len(_PALETTE)
    for gi, (group, curves) in enumerate(zip(groups, per_group, strict=True)):
        shape = {"marker": marker(gi), "markevery": 0.1, "ms": 3.5} if repeats else {}
        for ax, (metric, _) in zip(axes, panels, strict=True):
            done = [curves[r.run_id][metric] for r in group.completed
                    if metric in curves[r.run_id]]
            b = band(done)
            if b is not None:
                label = f"{group.name} (n={b.n})"
                ax.plot(b.steps, b.mean, color=color(gi), label=label, lw=1.6, **shape)
                if b.n > 1:
                    ax.fill_between(b.steps, b.low, b.high, color=color(gi), alpha=0.18, lw=0)
                drawn = True
            for run in group.runs:
                series = curves[run.run_id].get(metric)
                if run.completed or series is None:
                    continue
                ax.plot(series.steps, series.values, color=color(gi), lw=0.9, ls="--",
                        label=f"{run.label} ({run.status})")
                drawn = True
    if not drawn:
        return None
    for ax, (_, title) in zip(axes, panels, strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    legend(fig, axes)
    fig.suptitle("Loss curves (line: mean over seeds; band: min–max)")
    return _save(fig, path)


def final_metrics(groups: Sequence[VariantGroup], metrics: Sequence[str],
                  path: Path, max_panels: int = 6) -> Path | None:
    """Final value per variant, one panel per metric: mean with 95% CI bars, seeds as dots.

    The @Nx context-length metrics are left to the extrapolation figure, and variants without
    any completed value (all seeds failed) get no empty slot; colours still follow the
    variant's position in `groups` so they match the other figures.
    """
    metrics = [m for m in metrics if "@" not in m
               and any(metric_values(g.runs, m) for g in groups)][:max_panels]
    shown = [(gi, g) for gi, g in enumerate(groups)
             if any(metric_values(g.runs, m) for m in metrics)]
    if not metrics or not shown:
        return None
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = _new(4.2 * cols, 3.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        for slot, (gi, group) in enumerate(shown):
            values = metric_values(group.runs, metric)
            summary = summarise(values)
            if summary is None:
                continue
            ax.scatter([slot] * len(values), values, s=12, color="0.55", zorder=2)
            err = None
            if summary.n > 1:
                err = [[summary.mean - summary.ci_low], [summary.ci_high - summary.mean]]
            ax.errorbar([slot], [summary.mean], yerr=err, fmt=marker(gi), color=color(gi),
                        capsize=4, ms=7, zorder=3)
            if group.is_base:
                ax.axhline(summary.mean, color=color(gi), ls=":", lw=1)
        ax.set_xticks(range(len(shown)), [g.name for _, g in shown], rotation=30, ha="right",
                      fontsize=8)
        ax.set_title(f"{metric} ({direction_word(metric)})", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Final metrics (dot: mean; bars: 95% CI; grey: individual seeds)")
    return _save(fig, path)


def overview(groups: Sequence[VariantGroup], metric: str, path: Path) -> Path | None:
    """The report's opening figure: one row per variant. Left, `metric`: the mean over seeds
    (dot), its 95% CI (bar) and every seed (grey dots), the base's mean as a dotted line.
    Right, the cost: training wall time per run (bar: mean; dots: seeds), labelled with the
    parameter count."""
    shown = [(gi, g) for gi, g in enumerate(groups) if metric_values(g.runs, metric)]
    if not shown:
        return None
    fig = _new(9.5, 0.9 + 0.42 * len(shown))
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    rows = range(len(shown))[::-1]  # the first variant (the base) on top
    for row, (gi, group) in zip(rows, shown, strict=True):
        values = metric_values(group.runs, metric)
        summary = summarise(values)
        left.scatter(values, [row] * len(values), s=14, color="0.55", zorder=2)
        if summary is not None and summary.n > 1:
            left.errorbar([summary.mean], [row], capsize=4, color=color(gi), zorder=3,
                          xerr=[[summary.mean - summary.ci_low],
                                [summary.ci_high - summary.mean]])
        if summary is not None:
            left.plot([summary.mean], [row], marker(gi), ms=8, color=color(gi), zorder=4)
            if group.is_base:
                left.axvline(summary.mean, color=color(gi), ls=":", lw=1)
        done = [r for r in group.completed if r.wall_s is not None]
        if done:
            walls = [float(r.wall_s) for r in done]
            right.barh([row], [sum(walls) / len(walls)], color=color(gi), alpha=0.35,
                       height=0.6)
            right.scatter(walls, [row] * len(walls), s=14, color="0.35", zorder=3)
            params = [r.params for r in done if r.params]
            if params:
                right.annotate(f" {_short_count(max(params))} params", (max(walls), row),
                               va="center", fontsize=8)
    left.set_yticks(list(rows), [g.name for _, g in shown], fontsize=8)
    left.set_title(f"{metric} ({direction_word(metric)}): mean, 95% CI, seeds", fontsize=10)
    right.set_title("cost: training wall time per run (s)", fontsize=10)
    right.set_xlim(0, right.get_xlim()[1] * 1.3)  # room for the parameter labels
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def _short_count(value: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def extrapolation_metrics(metrics: Sequence[str]) -> dict[str, list[tuple[float, str]]]:
    """{'val/loss': [(1.0, 'val/loss@1x'), (2.0, 'val/loss@2x'), ...]} from metric names."""
    found: dict[str, list[tuple[float, str]]] = {}
    for name in metrics:
        match = _AT_MULTIPLE.match(name)
        if match:
            found.setdefault(match["base"], []).append((float(match["mult"]), name))
    return {k: sorted(v) for k, v in found.items()}


def extrapolation(groups: Sequence[VariantGroup], metrics: Sequence[str],
                  path: Path) -> Path | None:
    """Loss against evaluation context length (multiples of the training length).

    A variant whose metric is N/A at some length (null: e.g. learned positions past their
    table) simply has no point there; its line stops instead of dropping to zero.
    """
    families = extrapolation_metrics(metrics)
    if not families:
        return None
    fig = _new(max(6.5, 5.5 * len(families)), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(families))).ravel()
    drawn = False
    for ax, (base, points) in zip(axes, families.items(), strict=True):
        for gi, group in enumerate(groups):
            xs, ys, errs = [], [], []
            for mult, name in points:
                summary = summarise(metric_values(group.runs, name))
                if summary is None:
                    continue
                xs.append(mult)
                ys.append(summary.mean)
                errs.append(0.0 if summary.n < 2 else summary.std)
            if xs:
                ax.errorbar(xs, ys, yerr=errs, marker=marker(gi), capsize=3, color=color(gi),
                            label=group.name)
                drawn = True
        ax.set_xscale("log", base=2)
        mults = [m for m, _ in points]
        ax.set_xticks(mults, [f"{m:g}×" for m in mults])
        ax.set_xlabel("evaluation context / training context")
        ax.set_ylabel(base)
        ax.set_title(f"{base} vs context length ({direction_word(base)})", fontsize=10)
        ax.grid(alpha=0.3)
    if not drawn:
        return None
    legend(fig, axes, fontsize=8)
    fig.suptitle("Length extrapolation (mean ± std; no point = not applicable)")
    return _save(fig, path)


def grad_norms(groups: Sequence[VariantGroup], path: Path) -> Path | None:
    """Per-layer gradient norm over training, one panel per variant (mean over seeds)."""
    panels = []
    for group in groups:
        curves = [read_curves(r.metrics_csv) for r in group.completed]
        layers = sorted({layer for c in curves for layer in grad_norm_layers(c)})
        if layers:
            panels.append((group, curves, layers))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _new(4.5 * cols, 3.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True)).ravel()
    for ax, (group, curves, layers) in zip(axes, panels, strict=False):
        n_layers = len(layers)
        for li, (layer, column) in enumerate(layers):
            b = band([c[column] for c in curves if column in c])
            if b is None:
                continue
            # Shallow layers dark, deep layers light: depth reads as a gradient.
            shade = 0.85 * li / max(n_layers - 1, 1)
            ax.plot(b.steps, b.mean, color=colormaps["viridis"](shade), lw=1.2,
                    label=f"layer {layer}")
        ax.set_yscale("log")
        ax.set_title(group.name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("grad norm")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Gradient norm per layer (mean over seeds)")
    return _save(fig, path)


def sweep_history(study: StudyResult, path: Path) -> Path | None:
    """Objective per completed trial and the best value so far."""
    history = study.history()
    if not history:
        return None
    numbers, values, best = zip(*history, strict=True)
    fig = _new(7, 4)
    ax = fig.subplots()
    ax.scatter(numbers, values, s=18, color=color(0), label="trial")
    ax.step(numbers, best, where="post", color=color(1), label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(f"Optimisation history of '{study.name}' "
                 f"({'minimise' if study.direction == 'minimize' else 'maximise'})",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def sweep_importances(importances: dict[str, float], path: Path) -> Path | None:
    """A study's parameter importances (most important first) as a horizontal bar chart;
    None when there are none."""
    if not importances:
        return None
    names = list(importances)[::-1]  # most important on top
    fig = _new(7, 0.45 * len(names) + 1.5)
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color=color(0))
    ax.set_xlabel(f"importance ({IMPORTANCE_METHOD}, sums to 1)")
    ax.set_title("Hyperparameter importances", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


@dataclass(frozen=True)
class SettingLine:
    """One variant's metric at each value of a tuned setting: (value, its seeds' values)."""

    name: str
    points: list[tuple[float, list[float]]]
    shared: float | None  # the setting every variant shares, marked with an open circle
    best: float | None  # this variant's best setting, marked with a star


def setting_curves(lines: Sequence[SettingLine], xlabel: str, ylabel: str,
                   path: Path) -> Path | None:
    """A metric against a tuned setting (the learning rate), one line per variant: mean over
    seeds, bars from the lowest to the highest seed; a log axis when the values tried span a
    factor of four or more."""
    xs = [x for line in lines for x, _ in line.points]
    if not any(len(line.points) > 1 for line in lines):
        return None
    fig = _new(6.4, 4.0)
    ax = fig.add_subplot()
    for index, line in enumerate(lines):
        if not line.points:
            continue
        x = [v for v, _ in line.points]
        mean = [float(np.mean(values)) for _, values in line.points]
        spread = [[m - min(v) for m, (_, v) in zip(mean, line.points, strict=True)],
                  [max(v) - m for m, (_, v) in zip(mean, line.points, strict=True)]]
        ax.errorbar(x, mean, yerr=spread, color=color(index), marker=marker(index),
                    markersize=3, capsize=2, label=line.name)
        for where, mark, size in ((line.shared, "o", 10), (line.best, "*", 12)):
            if where in x:
                face = "none" if mark == "o" else color(index)
                ax.plot([where], [mean[x.index(where)]], marker=mark, markersize=size,
                        color=color(index), markerfacecolor=face, linestyle="none")
    if min(xs) > 0 and max(xs) / min(xs) >= 4:
        ax.set_xscale("log", base=2)
    ticks = sorted(set(xs))
    ax.set_xticks(ticks, [f"{x:g}" for x in ticks])  # the values tried, as written
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    legend(fig, [ax])  # one line per variant: a sweep over many variants has a long legend
    return _save(fig, path)
