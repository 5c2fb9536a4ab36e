"""The best trial as a ready-to-run experiment file (`tzoo sweep ... --export best.yaml`).

The file is the sweep's experiment, fully resolved (every key explicit, so it reproduces the
trial even if the defaults change later), with the best values set, the same seeds, and the
experiment's ablate axes minus those on tuned keys (and the `per` key): tuning fixed them. With
`per`, each study exports its own file: best.yaml -> best.pre.yaml, best.post.yaml.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from tzoo.recipes import rundir
from tzoo.recipes.experiment import set_dotted

from .results import SweepResult
from .spec import StudySpec, Sweep, expand


def export_best(sweep: Sweep, result: SweepResult, target: str | Path) -> list[Path]:
    """Write one experiment file per study that has a completed trial; the paths written.
    `result`: the sweep's results, as `read_sweep` read them from its storage."""
    studies = {study.name: study for study in result.studies}
    target = Path(target)
    written = []
    for spec in sweep.studies():
        best = studies[spec.name].best
        if best is None:
            continue
        values = {p.key: p.value(best.params[p.key]) for p in sweep.space}
        document = best_experiment(sweep, spec, values)
        path = target if not spec.fixed else target.with_name(
            f"{target.stem}.{_slug(spec)}{target.suffix or '.yaml'}")
        header = (f"# Best trial {best.number} of the study '{spec.name}' "
                  f"({sweep.metric} = {best.value:.6g}), exported by `tzoo sweep`.\n"
                  f"# Tuned: {', '.join(f'{k}={v}' for k, v in values.items())}\n")
        rundir.write_atomic(path, header + yaml.safe_dump(document, sort_keys=False))
        written.append(path)
    return written


def best_experiment(sweep: Sweep, study: StudySpec, values: dict[str, Any]) -> dict[str, Any]:
    experiment = sweep.experiment
    document = copy.deepcopy(experiment.base)
    fixed = {**expand(experiment, study.fixed), **values}
    for key, value in fixed.items():
        set_dotted(document, key, value)
    suffix = f"-{_slug(study)}" if study.fixed else ""
    document["experiment"] = f"{sweep.name}-best{suffix}"
    document["description"] = (f"best of the sweep {sweep.name}"
                               f"{' for ' + str(study.fixed) if study.fixed else ''}")
    document["seeds"] = list(experiment.seeds)
    bundles = getattr(experiment, "bundles", {})
    ablate: dict[str, Any] = {}
    for axis, axis_values in experiment.axes.items():
        keys = ({k for label in bundles[axis].values() for k in label}
                if axis in bundles else {axis})
        if axis in study.fixed or keys & set(fixed):
            continue  # the sweep chose this key's value
        ablate[axis] = copy.deepcopy(bundles[axis]) if axis in bundles else list(axis_values)
    document.pop("ablate", None)
    if ablate:
        document["ablate"] = {"mode": experiment.mode, **ablate}
        # The experiment's reference, on the axes that are left (a tuned axis has one value).
        reference = {axis: value for axis, value in getattr(experiment, "reference", {}).items()
                     if axis in ablate}
        if reference:
            document["ablate"]["reference"] = reference
    return document


def _slug(study: StudySpec) -> str:
    text = "-".join(str(v.get("name", v)) if isinstance(v, dict) else str(v)
                    for v in study.fixed.values())
    return re.sub(r"[^A-Za-z0-9.=-]+", "-", text).strip("-") or "study"
