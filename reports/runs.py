"""Finding and loading run directories: the only input the reports read.

A run directory (``runs/<experiment>/<run_id>/``) holds ``config.yaml``, ``summary.json`` and
``metrics.csv``. Runs are written by other processes and may be half-written, crashed or still
going, so loading never raises for one bad run: it records what was wrong and carries on, and
the report lists such runs instead of dropping them.
"""

from __future__ import annotations

import glob
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tzoo.components.errors import ConfigError
from tzoo.recipes.experiment import check_reference, config_digest, get_dotted, short_value

SUMMARY = "summary.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
CHECKPOINTS = ("checkpoints/final.pt", "checkpoints/last.ckpt")
BASE_NAME = "base"
UNKNOWN_FINGERPRINT = "unknown"


@dataclass
class Run:
    """One run directory, as far as it could be read."""

    path: Path
    run_id: str
    experiment: str
    status: str
    variant: dict[str, Any] = field(default_factory=dict)
    variant_name: str = BASE_NAME
    seed: int | None = None
    error: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    params: int | None = None
    tokens_per_s: float | None = None
    peak_mem_mb: float | None = None
    wall_s: float | None = None
    steps: int | None = None
    data_fingerprint: str = UNKNOWN_FINGERPRINT
    versions: dict[str, str] = field(default_factory=dict)
    base_variant: bool = False
    config: dict[str, Any] | None = None
    # The result-relevant configuration, seed left out (recipes.experiment.config_digest):
    # runs pool into one variant only when both their variant name and this agree.
    config_digest: str = UNKNOWN_FINGERPRINT
    # The experiment's `ablate.reference`, if it declared one.
    reference: dict[str, Any] = field(default_factory=dict)
    # False for runs still going or whose summary.json is unreadable: their variant, seed and
    # data fingerprint are unknown, so they are listed but never grouped.
    has_summary: bool = True

    @property
    def completed(self) -> bool:
        return self.status == "completed"

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


def is_run_dir(path: Path) -> bool:
    """A run directory is any directory with a summary or a config in it."""
    return path.is_dir() and ((path / SUMMARY).is_file() or (path / CONFIG).is_file())


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


def _number(value: Any) -> float | None:
    """A float, NaN included (a diverged run's loss); None for null or anything non-numeric."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or math.isnan(number) else int(number)


def _experiment_name(summary: dict[str, Any], config: dict[str, Any] | None, path: Path) -> str:
    if isinstance(summary.get("experiment"), str):
        return summary["experiment"]
    exp = (config or {}).get("experiment")
    if isinstance(exp, str):
        return exp
    if isinstance(exp, dict) and isinstance(exp.get("name"), str):
        return exp["name"]
    # runs/<experiment>/<run_id>: the parent directory is the experiment.
    return path.parent.name


def variant_label(variant: dict[str, Any]) -> str:
    """'model.position=rotary,model.norm=pre' for a variant dict; 'base' for {}."""
    if not variant:
        return BASE_NAME
    return ",".join(f"{k}={v}" for k, v in sorted(variant.items()))


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
    summary_path = path / SUMMARY
    if not summary_path.is_file():
        # The summary is written atomically at the end, so no summary means still going
        # (or killed hard enough that not even the failure handler ran).
        return Run(
            path=path,
            run_id=path.name,
            experiment=_experiment_name({}, config, path),
            status="running",
            variant_name="unknown",
            error=config_problem or f"no {SUMMARY} yet",
            config=config,
            has_summary=False,
        )
    try:
        summary = json.loads(summary_path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError) as exc:
        return Run(
            path=path,
            run_id=path.name,
            experiment=_experiment_name({}, config, path),
            status="unreadable",
            variant_name="unknown",
            error=f"{SUMMARY} could not be read: {exc}",
            config=config,
            has_summary=False,
        )
    variant = summary.get("variant") if isinstance(summary.get("variant"), dict) else {}
    raw_metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    versions = summary.get("versions") if isinstance(summary.get("versions"), dict) else {}
    return Run(
        path=path,
        run_id=str(summary.get("run_id") or path.name),
        experiment=_experiment_name(summary, config, path),
        status=str(summary.get("status") or "unknown"),
        variant=variant,
        variant_name=str(summary.get("variant_name") or variant_label(variant)),
        seed=_int(summary.get("seed")),
        error=summary.get("error") or config_problem,
        metrics={str(k): _number(v) for k, v in raw_metrics.items()},
        params=_int(summary.get("params")),
        tokens_per_s=_number(summary.get("tokens_per_s")),
        peak_mem_mb=_number(summary.get("peak_mem_mb")),
        wall_s=_number(summary.get("wall_s")),
        steps=_int(summary.get("steps")),
        data_fingerprint=str(summary.get("data_fingerprint") or UNKNOWN_FINGERPRINT),
        versions={str(k): str(v) for k, v in versions.items()},
        base_variant=bool(summary.get("base_variant", not variant)),
        config=config,
        config_digest=config_digest(config) if isinstance(config, dict) else UNKNOWN_FINGERPRINT,
        reference=summary["reference"] if isinstance(summary.get("reference"), dict) else {},
    )


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


def _axis_value(group: VariantGroup, axis: str) -> str:
    """The group's value on `axis`: from its variant, else from its runs' configuration."""
    if axis in group.variant:
        return short_value(group.variant[axis])
    config = next((r.config for r in group.runs if r.config), None) or {}
    return short_value(get_dotted(config, axis))


def assign_references(groups: Sequence[VariantGroup], reference: dict[str, Any]) -> None:
    """Compare each group with the group that has the `reference` values on those axes and
    this group's values on every other ablated axis: in a grid of residual × depth with
    reference {model.residual: add}, `none, 6 layers` is compared with `add, 6 layers`."""
    axes = {axis for g in groups for axis in g.variant}
    check_reference(reference, {a: sorted({_axis_value(g, a) for g in groups}) for a in axes},
                    "--reference")
    cells = {g.name: {a: _axis_value(g, a) for a in axes | set(reference)} for g in groups}
    wanted = {a: short_value(v) for a, v in reference.items()}
    for group in groups:
        cell = cells[group.name]
        group.is_reference = all(cell[a] == v for a, v in wanted.items())
        target = {**cell, **wanted}
        group.reference = None if group.is_reference else next(
            (g for g in groups if cells[g.name] == target), None)
