"""Reading training curves from a run's ``metrics.csv`` (Lightning CSVLogger format).

The file has one column per logged metric and sparse rows: a training row fills train/loss,
lr and the gradient norms, a validation row fills val/*, everything else is empty. We turn it
into one (steps, values) series per metric.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_GRAD_NORM = re.compile(r"^grad_norm/layer_(\d+)$")


@dataclass(frozen=True)
class Series:
    """One metric over training: parallel arrays of steps and values, sorted by step."""

    steps: np.ndarray
    values: np.ndarray


def read_curves(path: str | Path) -> dict[str, Series]:
    """Every metric column of a metrics.csv as a Series; {} when the file is missing or bad."""
    path = Path(path)
    points: dict[str, list[tuple[float, float]]] = {}
    try:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                step = _float(row.get("step"))
                if step is None:
                    continue
                for name, cell in row.items():
                    if name in (None, "step", "epoch"):
                        continue
                    value = _float(cell)
                    if value is not None:
                        points.setdefault(name, []).append((step, value))
    except (OSError, csv.Error, UnicodeDecodeError):
        # A run killed mid-write can leave a truncated file; plots just lose that run.
        return {}
    curves = {}
    for name, pairs in points.items():
        pairs.sort(key=lambda p: p[0])
        arr = np.asarray(pairs, dtype=float)
        curves[name] = Series(arr[:, 0], arr[:, 1])
    return curves


def _float(cell: str | None) -> float | None:
    if cell is None or cell.strip() == "":
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def grad_norm_layers(curves: dict[str, Series]) -> list[tuple[int, str]]:
    """(layer index, column name) of the per-layer gradient norm columns, by layer."""
    found = [(int(m.group(1)), name) for name in curves if (m := _GRAD_NORM.match(name))]
    return sorted(found)


@dataclass(frozen=True)
class Band:
    """Several seeds' curves on one step grid: their mean, min and max (NaN where none)."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int


def band(series: Sequence[Series]) -> Band | None:
    """Combine seeds whose logging steps may differ.

    Each run is linearly interpolated onto the union of all steps, but only inside its own
    step range: a run that stopped early must not be extended flat to the end.
    """
    series = [s for s in series if len(s.steps)]
    if not series:
        return None
    grid = np.unique(np.concatenate([s.steps for s in series]))
    stacked = np.full((len(series), len(grid)), np.nan)
    for i, s in enumerate(series):
        finite = np.isfinite(s.values)
        if not finite.any():
            continue
        inside = (grid >= s.steps[0]) & (grid <= s.steps[-1])
        stacked[i, inside] = np.interp(grid[inside], s.steps[finite], s.values[finite])
    with np.errstate(all="ignore"):
        present = np.isfinite(stacked).any(axis=0)
        mean = np.full(len(grid), math.nan)
        low = mean.copy()
        high = mean.copy()
        mean[present] = np.nanmean(stacked[:, present], axis=0)
        low[present] = np.nanmin(stacked[:, present], axis=0)
        high[present] = np.nanmax(stacked[:, present], axis=0)
    return Band(grid, mean, low, high, len(series))
