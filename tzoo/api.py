"""The suite from Python, for notebooks: what `tzoo run`, `tzoo report` and `tzoo generate` do,
as four functions (re-exported as `tzoo.load_experiment`, ... without importing torch until
one is called).

    import tzoo
    experiment = tzoo.load_experiment("quickstart", {"train.steps": 200})
    outcomes = tzoo.run_experiment(experiment)
    run = tzoo.load_run(outcomes[0].run_dir)          # .model .tokenizer .config .metrics
    report = tzoo.build_report(experiment.runs_dir)   # reports/quickstart/report.md
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tzoo.recipes.checkpoints import LoadedRun
    from tzoo.recipes.experiment import Experiment
    from tzoo.recipes.runner import RunOutcome

Overrides = Mapping[str, Any] | Sequence[str]


def _override_texts(overrides: Overrides | None) -> list[str]:
    """{'train.steps': 200} or ['train.steps=200'] -> ['train.steps=200'] (values as YAML)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return [str(text) for text in overrides]


def load_experiment(experiment: str | Path | Mapping[str, Any],
                    overrides: Overrides | None = None) -> Experiment:
    """An experiment, validated: a YAML file, a shipped experiment's name ("quickstart"), or
    a mapping of its keys. `overrides`: dotted keys to change, as a mapping
    ({"model.layers": 6}) or as `--set` texts (["model.layers=6"]). Bad input raises
    `tzoo.components.ConfigError`, naming the file and the key."""
    from tzoo.recipes.experiment import experiment_from_dict
    from tzoo.recipes.experiment import load_experiment as load
    from tzoo.shipped import resolve

    if isinstance(experiment, Mapping):
        from tzoo.recipes.experiment import parse_override, set_dotted

        raw = json.loads(json.dumps(dict(experiment)))  # a deep copy of plain data
        for text in _override_texts(overrides):
            set_dotted(raw, *parse_override(text))
        return experiment_from_dict(raw)
    return load(resolve(str(experiment)), _override_texts(overrides))


def run_experiment(experiment: Experiment | str | Path | Mapping[str, Any],
                   overrides: Overrides | None = None, *, out: str | Path | None = None,
                   quiet: bool = False) -> list[RunOutcome]:
    """Train every run of an experiment (skipping completed ones, resuming interrupted ones,
    as `tzoo run` does); returns what happened to each (`.status`, `.run_dir`, `.note`)."""
    from tzoo.recipes.experiment import Experiment
    from tzoo.recipes.runner import run_experiment as run

    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment, overrides)
    elif overrides:
        raise TypeError("overrides apply when loading: tzoo.load_experiment(path, overrides)")
    return run(experiment, out=out, echo=(lambda _: None) if quiet else print)


def load_run(run_dir: str | Path) -> LoadedRun:
    """A finished run: `.model` (eval mode), `.tokenizer`, `.config` (resolved), `.metrics`
    (its summary's final metrics) and `.summary` (all of summary.json)."""
    from tzoo.recipes.checkpoints import load_run as load

    return load(run_dir)


def build_report(runs: str | Path | Iterable[str | Path], out: str | Path | None = None, *,
                 title: str | None = None, probes: bool = True,
                 reference: Mapping[str, Any] | None = None) -> Path:
    """Write report.md and a self-contained index.html for run, experiment or runs folders
    (default out: reports/<experiment>/); returns the path of report.md."""
    from tzoo.reports.build import build_report as build
    from tzoo.reports.cli import default_out

    paths = [str(runs)] if isinstance(runs, (str, Path)) else [str(p) for p in runs]
    target = Path(out) if out else default_out(paths)
    return build(paths, target, title=title, probes=probes,
                 reference=dict(reference) if reference else None)
