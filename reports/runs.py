"""Finding and loading run directories: the only input the reports read.

A run directory (``runs/<experiment>/<run_id>/``) holds ``config.yaml``, ``summary.json`` and
``metrics.csv``. Runs are written by other processes and may be half-written, crashed or still
going, so loading never raises for one bad run: it records what was wrong and carries on, and
the report lists such runs instead of dropping them.
"""

from __future__ import annotations

import dataclasses
import glob
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tzoo.components.errors import ConfigError
from tzoo.recipes.experiment import check_reference, config_digest, get_dotted, short_value
from tzoo.recipes.rundir import (
    CONFIG,
    FINAL_CHECKPOINT,
    LAST_CHECKPOINT,
    METRICS,
    SUMMARY,
    UNKNOWN,
    RunSummary,
    SummaryUnreadable,
    is_run_dir,
    load_summary,
)

#: the checkpoint probes load: the final weights, else the last resume point
CHECKPOINTS = (FINAL_CHECKPOINT, LAST_CHECKPOINT)


@dataclass(kw_only=True)
class Run(RunSummary):
    """One run directory, as far as it could be read: its summary plus where it lives and
    its resolved configuration."""

    path: Path
    config: dict[str, Any] | None = None
    # The result-relevant configuration, seed left out (recipes.experiment.config_digest):
    # runs pool into one variant only when both their variant name and this agree.
    config_digest: str = UNKNOWN
    # False for runs still going or whose summary.json is unreadable: their variant, seed and
    # data fingerprint are unknown, so they are listed but never grouped.
    has_summary: bool = True

    @property
    def metrics_csv(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoint(self) -> Path | None:
        """The final checkpoint if there is one, else the last one, else None."""
        for rel in CHECKPOINTS:
            if (self.path / rel).is_file():
                return self.path / rel
        return None

    @property
    def label(self) -> str:
        """Short human name: variant and seed."""
        seed = f" seed {self.seed}" if self.seed is not None else ""
        return f"{self.variant_name}{seed}"


@dataclass
class VariantGroup:
    """All runs of one variant (one configuration, several seeds)."""

    name: str
    variant: dict[str, Any]
    is_base: bool
    runs: list[Run]
    #: the group Δ and p compare this one with: the base, or this group's cell of the
    #: reference (`assign_references`); None for the anchors themselves and when there is none
    reference: VariantGroup | None = None
    #: an anchor of comparisons (the base, or a cell with the reference values)
    is_reference: bool = False

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.completed]


def _expand(pattern: str) -> list[Path]:
    if glob.has_magic(pattern):
        return [Path(p) for p in sorted(glob.glob(pattern))]
    return [Path(pattern)]


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under `paths`: run dirs, experiment dirs, a runs/ root, or globs.

    Raises ConfigError naming the first path under which no run directory was found, since
    a typo there should not silently produce an empty report.
    """
    found: dict[Path, None] = {}  # an ordered set: keep the user's order, drop duplicates
    for raw in paths:
        hits: list[Path] = []
        for path in _expand(str(raw)):
            if is_run_dir(path):
                hits.append(path)
            elif path.is_dir():
                # An experiment dir holds run dirs; a runs/ root holds experiment dirs.
                children = sorted(p for p in path.iterdir() if is_run_dir(p))
                if not children:
                    children = sorted(p for p in path.glob("*/*") if is_run_dir(p))
                hits.extend(children)
        if not hits:
            raise ConfigError(
                f"no run directories found at '{raw}' (a run directory contains "
                f"{SUMMARY} or {CONFIG}; pass run dirs, experiment dirs or a glob)"
            )
        for hit in hits:
            found[hit.resolve()] = None
    return list(found)


def _experiment_name(config: dict[str, Any] | None, path: Path) -> str:
    """The experiment of a run whose summary does not say: its config's, else its folder's."""
    exp = (config or {}).get("experiment")
    if isinstance(exp, str):
        return exp
    if isinstance(exp, dict) and isinstance(exp.get("name"), str):
        return exp["name"]
    # runs/<experiment>/<run_id>: the parent directory is the experiment.
    return path.parent.name


def _read_config(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        loaded = yaml.safe_load((path / CONFIG).read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, yaml.YAMLError) as exc:
        return None, f"{CONFIG} could not be read: {exc}"
    return (loaded if isinstance(loaded, dict) else None), None


def load_run(path: str | Path) -> Run:
    """Read one run directory; never raises for a malformed or unfinished run."""
    path = Path(path)
    config, config_problem = _read_config(path)
    experiment = _experiment_name(config, path)
    try:
        summary = load_summary(path)
    except SummaryUnreadable as error:
        return Run(path=path, run_id=path.name, experiment=experiment, status="unreadable",
                   variant_name="unknown", error=str(error), config=config, has_summary=False)
    if summary is None:
        # The summary is written atomically at the end, so no summary means still going
        # (or killed hard enough that not even the failure handler ran).
        return Run(path=path, run_id=path.name, experiment=experiment, status="running",
                   variant_name="unknown", error=config_problem or f"no {SUMMARY} yet",
                   config=config, has_summary=False)
    fields = {f.name: getattr(summary, f.name) for f in dataclasses.fields(RunSummary)}
    fields.update(
        experiment=experiment if summary.experiment == UNKNOWN else summary.experiment,
        error=summary.error or config_problem,
    )
    return Run(**fields, path=path, config=config,
               config_digest=config_digest(config) if isinstance(config, dict) else UNKNOWN)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Find and load every run under `paths` (see find_run_dirs)."""
    return [load_run(p) for p in find_run_dirs(paths)]


def group_by_fingerprint(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs per data fingerprint, in order of first appearance.

    Runs trained on different data are never pooled: every statistic is computed inside one
    of these groups.
    """
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.data_fingerprint, []).append(run)
    return groups


def group_by_variant(runs: Sequence[Run],
                     reference: dict[str, Any] | None = None) -> list[VariantGroup]:
    """Runs per configuration (variant name and config digest), the base first, then the
    others alphabetically. Two configurations that share a variant name (say the same ablation
    value over a different base, copied into one folder) are kept apart and named with their
    digest, `learned [3f2a91c0]`, rather than pooled as if they were seeds of one.

    Each group is compared with the base, or, given a `reference` ({axis: value}; default: the
    one the runs' experiment declared as `ablate.reference`), with its own cell of it."""
    by_key: dict[tuple[str, str], VariantGroup] = {}
    for run in runs:
        key = (run.variant_name, run.config_digest)
        group = by_key.get(key)
        if group is None:
            group = by_key[key] = VariantGroup(run.variant_name, run.variant, run.base_variant, [])
        group.is_base = group.is_base or run.base_variant
        group.runs.append(run)
    names = Counter(name for name, _ in by_key)
    for (name, digest), group in by_key.items():
        group.runs.sort(key=lambda r: (r.seed is None, r.seed or 0, r.run_id))
        if names[name] > 1:
            group.name = f"{name} [{digest}]"
    groups = sorted(by_key.values(), key=lambda g: (not g.is_base, g.name))
    if reference is None:
        declared = {json.dumps(r.reference, sort_keys=True, default=str) for r in runs}
        reference = json.loads(declared.pop()) if len(declared) == 1 else {}
    if reference:
        assign_references(groups, reference)
    else:
        base = next((g for g in groups if g.is_base), None)
        for group in groups:
            group.is_reference = group is base
            group.reference = None if group is base else base
    return groups


def axis_value(group: VariantGroup, axis: str) -> str:
    """The group's value on `axis`: from its variant, else from its runs' configuration."""
    if axis in group.variant:
        return short_value(group.variant[axis])
    config = next((r.config for r in group.runs if r.config), None) or {}
    return short_value(get_dotted(config, axis))


def axis_values(groups: Sequence[VariantGroup]) -> dict[str, set[str]]:
    """Every ablated axis of the groups (their variants' keys) -> the values they take on it."""
    axes = {axis for group in groups for axis in group.variant}
    return {axis: {axis_value(group, axis) for group in groups} for axis in axes}


def assign_references(groups: Sequence[VariantGroup], reference: dict[str, Any]) -> None:
    """Compare each group with the group that has the `reference` values on those axes and
    this group's values on every other ablated axis: in a grid of residual × depth with
    reference {model.residual: add}, `none, 6 layers` is compared with `add, 6 layers`."""
    values = axis_values(groups)
    check_reference(reference, {a: sorted(v) for a, v in values.items()}, "--reference")
    cells = {g.name: {a: axis_value(g, a) for a in values.keys() | set(reference)}
             for g in groups}
    wanted = {a: short_value(v) for a, v in reference.items()}
    for group in groups:
        cell = cells[group.name]
        group.is_reference = all(cell[a] == v for a, v in wanted.items())
        target = {**cell, **wanted}
        group.reference = None if group.is_reference else next(
            (g for g in groups if cells[g.name] == target), None)
