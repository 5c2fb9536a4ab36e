"""`tzoo runs [DIR]`: every run under a folder, one line each (status, step, primary metric,
wall time), as a terminal table or JSON.

A run still going has no final step or wall time in its summary: its step is the last one in
its metrics.csv, and its wall time the time since its summary (else its config) was written
when it started or resumed.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tzoo.recipes.rundir import CONFIG, SUMMARY
from tzoo.recipes.tasks import primary_metric

from . import fmt
from .runs import Run, load_runs


@dataclass
class RunLine:
    """One run as `tzoo runs` shows it."""

    path: str
    experiment: str
    run_id: str
    variant: str
    seed: int | None
    status: str
    step: int | None
    steps: int | None  # the run's planned training steps
    metric: str
    value: float | None
    wall_s: float | None


def _last_logged_step(run: Run) -> int | None:
    """The step of the last row of metrics.csv (a run in progress logs as it goes)."""
    try:
        with run.metrics_csv.open(newline="") as handle:
            steps = [row.get("step") for row in csv.DictReader(handle)]
    except OSError:
        return None
    for step in reversed(steps):
        if step not in (None, ""):
            return int(float(step))
    return None


def _planned_steps(run: Run) -> int | None:
    steps = ((run.config or {}).get("train") or {}).get("steps")
    return steps if isinstance(steps, int) else None


def run_line(run: Run, *, now: float | None = None) -> RunLine:
    metric = primary_metric(run.config)
    step, wall = run.steps, run.wall_s
    if run.status == "running":
        step = _last_logged_step(run)
        # written when the run (or its resume) started: the summary, else the config
        started = next((run.path / name for name in (SUMMARY, CONFIG)
                        if (run.path / name).is_file()), None)
        if started is not None:
            wall = (now or time.time()) - started.stat().st_mtime
    elif step is None:
        step = run.diverged_at_step if run.diverged_at_step is not None else _last_logged_step(run)
    return RunLine(
        path=str(run.path), experiment=run.experiment, run_id=run.run_id,
        variant=run.variant_name, seed=run.seed, status=run.status, step=step,
        steps=_planned_steps(run), metric=metric, value=run.metrics.get(metric),
        wall_s=None if wall is None else round(wall, 2),
    )


def list_runs(paths: Iterable[str | Path]) -> list[RunLine]:
    """Every run under `paths` (run, experiment or runs/ folders), in folder order."""
    return [run_line(run) for run in load_runs(paths)]


def as_json(lines: Sequence[RunLine]) -> list[dict[str, Any]]:
    return [asdict(line) for line in lines]


def table(lines: Sequence[RunLine]) -> str:
    """A plain-text table; the metric column is named after the metric when all runs share it."""
    metrics = {line.metric for line in lines}
    shared = metrics.pop() if len(metrics) == 1 else None
    headers = ["run", "variant", "seed", "status", "step", shared or "primary metric",
               "wall time"]
    rows = []
    for line in lines:
        step = "—" if line.step is None else str(line.step)
        if line.steps is not None:
            step += f"/{line.steps}"
        value = fmt.num(line.value)
        rows.append([f"{line.experiment}/{line.run_id}", line.variant,
                     "—" if line.seed is None else str(line.seed), line.status, step,
                     value if shared else f"{line.metric} {value}", fmt.duration(line.wall_s)])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                         strict=True)]
    right = {2, 4, 5, 6}  # numbers align right

    def render(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([render(headers), render(["-" * w for w in widths]),
                      *(render(row) for row in rows)]) + "\n"
