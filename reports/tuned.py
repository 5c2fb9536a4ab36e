"""Each variant at one shared setting and at its own best one, side by side.

A comparison at one shared learning rate mixes "is better" with "suits this learning rate": a
variant that wants a higher rate looks worse than it is. Given runs over a grid of variants x
settings (a sweep with `per:`, or an experiment that ablates both axes) and the shared setting
(`tzoo report --shared train.lr=0.002`), this section shows each variant at the shared setting
and at the setting that was best for it, ranks the variants both ways and lists the
comparisons whose answer changes. A best setting at the edge of the values tried is flagged:
the optimum may lie outside them, and the tuned figure is then only a bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from tzoo.recipes.experiment import check_reference, short_value

from . import fmt, plots
from .direction import better, direction_word, lower_is_better
from .document import Block, Bullets, Heading, Image, Note, Paragraph, Table
from .runs import Run, VariantGroup, axis_value, axis_values, group_by_variant
from .stats import Summary, metric_values, summarise, welch


@dataclass
class Cell:
    """One variant at one setting: its seeds' final values of the metric."""

    setting: str
    values: list[float]
    summary: Summary | None
    x: float | None = None  # the setting as a number, when it is one numeric key


@dataclass
class Family:
    """One variant (every ablated axis but the tuned ones) across the settings tried."""

    name: str
    cells: list[Cell]
    shared: Cell | None = None
    best: Cell | None = None
    at_edge: bool = False


def _setting(group: VariantGroup, keys: Sequence[str]) -> str:
    return ", ".join(f"{key}={axis_value(group, key)}" for key in keys)


def _family_name(group: VariantGroup, keys: Sequence[str]) -> str:
    rest = {k: v for k, v in group.variant.items() if k not in keys}
    return ", ".join(f"{k}={short_value(v)}" for k, v in rest.items()) or "(base)"


def _number_first(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order (1e-3 before 2e-3), then names."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _numeric(group: VariantGroup, keys: Sequence[str]) -> float | None:
    if len(keys) != 1:
        return None
    kind, number, _ = _number_first(axis_value(group, keys[0]))
    return number if kind == 0 else None


def families(runs: Sequence[Run], shared: dict[str, Any], metric: str) -> list[Family]:
    """Every variant's cells, its cell at the shared setting and its best cell. Raises
    ConfigError when `shared` names a key no run varies or a value no run used."""
    groups = group_by_variant([r for r in runs if r.has_summary])
    keys = list(shared)
    # The keys that can be tuned are those the runs vary (their variants' axes).
    tried = {axis: sorted(values, key=_number_first)
             for axis, values in axis_values(groups).items()}
    check_reference(shared, tried, "--shared")
    wanted = ", ".join(f"{key}={short_value(value)}" for key, value in shared.items())
    by_name: dict[str, Family] = {}
    for group in groups:
        name = _family_name(group, keys)
        family = by_name.setdefault(name, Family(name, []))
        values = metric_values(group.runs, metric)
        family.cells.append(Cell(_setting(group, keys), values, summarise(values),
                                 _numeric(group, keys)))
    for family in by_name.values():
        family.cells.sort(key=lambda c: (c.x is None, c.x or 0.0, c.setting))
        measured = [c for c in family.cells if c.summary is not None]  # runs still training
        family.shared = next((c for c in measured if c.setting == wanted), None)
        for cell in measured:
            if family.best is None or better(metric, cell.summary.mean,
                                             family.best.summary.mean) == -1:
                family.best = cell
        # With two values tried, the best is always at an edge: flagged too, as it should be.
        ends = (measured[0], measured[-1]) if len(measured) >= 2 else ()
        family.at_edge = family.best is not None and any(family.best is c for c in ends)
    return sorted(by_name.values(), key=lambda f: f.name)


def _rank(items: list[Family], cell_of: Any, metric: str) -> dict[str, int]:
    """1 = best; families without a value at that cell are left out."""
    measured = [f for f in items if cell_of(f) is not None and cell_of(f).summary is not None]
    sign = -1 if lower_is_better(metric) is False else 1
    measured.sort(key=lambda f: sign * cell_of(f).summary.mean)
    return {f.name: i for i, f in enumerate(measured, start=1)}


def _ordering(items: list[Family], ranks: dict[str, int]) -> str:
    ordered = sorted((f for f in items if f.name in ranks), key=lambda f: ranks[f.name])
    return ", ".join(f"`{f.name}`" for f in ordered)


def _pair_text(a: Cell, b: Cell) -> str:
    delta = welch(a.values, b.values)
    p = fmt.p_value(delta.p_value) if delta.p_value is not None else delta.note
    return f"{fmt.signed(delta.diff)} (p {p})"


def changed_conclusions(items: list[Family], metric: str) -> list[str]:
    """The pairs of variants whose order at the shared setting differs from their order at
    their own best settings."""
    lines = []
    for a, b in combinations(items, 2):
        if None in (a.shared, b.shared, a.best, b.best):
            continue
        at_shared = better(metric, a.shared.summary.mean, b.shared.summary.mean)
        tuned = better(metric, a.best.summary.mean, b.best.summary.mean)
        if at_shared is None or tuned is None or at_shared == tuned or 0 in (at_shared, tuned):
            continue
        first, second = (a, b) if at_shared == -1 else (b, a)
        lines.append(f"`{first.name}` beats `{second.name}` at the shared setting, "
                     f"{_pair_text(first.shared, second.shared)}; tuned, `{second.name}` beats "
                     f"`{first.name}`, {_pair_text(second.best, first.best)}")
    return lines


def section(runs: Sequence[Run], shared: dict[str, Any], metric: str, plot_dir: Path,
            root: Path) -> list[Block]:
    items = families(runs, shared, metric)
    label = ", ".join(f"`{k}={short_value(v)}`" for k, v in shared.items())
    keys = ", ".join(f"`{k}`" for k in shared)
    blocks: list[Block] = [
        Heading(2, f"Shared or tuned {keys}"),
        Paragraph(f"Each variant at the shared setting {label} and at the value of {keys} that "
                  f"was best for it among those tried (by the mean `{metric}` over seeds, "
                  f"{direction_word(metric)}). Tuning gain: shared minus tuned. The "
                  "p-values are Welch's t-test across seeds. A tuned figure is the best of "
                  "several means, so it flatters its variant by selection, the more so the "
                  "fewer the seeds and the closer the settings: rerunning each variant at its "
                  "best setting on fresh seeds measures it without that bias."),
    ]
    at_shared = _rank(items, lambda f: f.shared, metric)
    tuned = _rank(items, lambda f: f.best, metric)
    rows = []
    for family in items:
        shared_cell, best = family.shared, family.best
        gain = "—"
        if shared_cell and shared_cell.summary and best:
            difference = shared_cell.summary.mean - best.summary.mean
            gain = fmt.signed(difference) if difference else "0"
        note = "best at the edge of the values tried" if family.at_edge else (
            "one value measured" if sum(c.summary is not None for c in family.cells) == 1
            else "")
        rows.append([
            f"`{family.name}`",
            _cell_text(shared_cell), str(at_shared.get(family.name, "—")),
            f"`{best.setting}`" if best else "—", _cell_text(best),
            str(tuned.get(family.name, "—")), gain, note,
        ])
    blocks.append(Table(["variant", "at the shared setting", "rank", "best setting", "tuned",
                         "rank", "tuning gain", "note"], rows,
                        [False, True, True, False, True, True, True, False]))
    changes = changed_conclusions(items, metric)
    blocks.append(Bullets([
        f"Order at the shared setting, best first: {_ordering(items, at_shared) or '—'}.",
        f"Order with each variant tuned, best first: {_ordering(items, tuned) or '—'}.",
    ]))
    if changes:
        blocks += [Paragraph("Comparisons whose answer changes when each variant is tuned:"),
                   Bullets(changes)]
    else:
        blocks.append(Paragraph("No pair of variants changes order when each is tuned."))
    if any(f.at_edge for f in items):
        blocks.append(Note("For a variant whose best setting is at the edge of the values "
                           "tried, its optimum may lie outside them: its tuned figure is an "
                           "upper bound on how good it can be made (a lower bound for a "
                           "metric where higher is better)."))
    figure = tuning_curves(items, metric, plot_dir / "tuning_curves.png")
    if figure is not None:
        blocks.append(Image(figure.relative_to(root).as_posix(), f"{metric} against {keys}",
                            f"{metric} at each setting tried: mean over seeds, bars from the "
                            "lowest to the highest seed; the open circle marks the shared "
                            "setting, the star each variant's best."))
    return blocks


def _cell_text(cell: Cell | None) -> str:
    if cell is None or cell.summary is None:
        return "—"
    return f"{fmt.mean_std(cell.summary)} ({cell.summary.n} seeds)"


def tuning_curves(items: list[Family], metric: str, path: Path) -> Path | None:
    """The metric against the one tuned setting, a line per variant (numeric settings only)."""
    lines = [plots.SettingLine(
        family.name, [(c.x, c.values) for c in family.cells if c.x is not None and c.values],
        family.shared.x if family.shared else None, family.best.x if family.best else None)
        for family in items]
    xlabel = items[0].cells[0].setting.partition("=")[0] if items else ""
    return plots.setting_curves(lines, xlabel, f"{metric} ({direction_word(metric)})", path)
