"""What the report opens with: one chart of the primary metric per variant (mean, 95% CI,
seeds as dots) with the cost beside it, before any table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tzoo.recipes.tasks import primary_metric

from . import plots
from .direction import direction_word
from .document import Block, Heading, Image, Paragraph
from .runs import Run, group_by_fingerprint, group_by_variant
from .stats import metric_names


def primary_of(runs: Sequence[Run], metrics: Sequence[str]) -> str | None:
    """The metric the runs are judged by first: their task's primary metric
    (`recipes.tasks.primary_metric`) when they report it, else the first of `metrics`."""
    configs = [r.config for r in runs if r.completed and r.config]
    wanted = primary_metric(configs[0]) if configs else None
    if wanted in metrics:
        return wanted
    return metrics[0] if metrics else None


def overview(runs: Sequence[Run], root: Path, plot_dir: Path) -> list[Block]:
    """The opening chart, one per data fingerprint (runs on different data are never drawn
    together); nothing when no run has completed."""
    fingerprints = list(group_by_fingerprint([r for r in runs if r.has_summary]).values())
    blocks: list[Block] = []
    for index, group in enumerate(fingerprints, start=1):
        metrics = [m for m in metric_names(group) if "@" not in m] or metric_names(group)
        primary = primary_of(group, metrics)
        if primary is None:
            continue
        prefix = f"data{index}_" if len(fingerprints) > 1 else ""
        path = plots.overview(group_by_variant(group), primary,
                              plot_dir / f"{prefix}overview.png")
        if path is None:
            continue
        if not blocks:
            blocks.append(Heading(2, "At a glance"))
        blocks.append(Image(path.relative_to(root).as_posix(), f"{primary} per variant",
                            f"`{primary}` ({direction_word(primary)}) per variant: dot = mean "
                            "over seeds, bar = 95% confidence interval, grey dots = seeds; "
                            "right: what each run cost (training wall time, parameters)."))
    if len(blocks) > 2:
        blocks.insert(1, Paragraph("One chart per data set: runs on different data are "
                                   "never compared."))
    return blocks
