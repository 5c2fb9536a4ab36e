"""A sweep's studies as plain data, for the reports: runs/<sweep>/study.json and `load_study`.

    {"sweep": ..., "metric": "val/loss", "direction": "minimize", "storage": ...,
     "studies": [{"name": ..., "fixed": {"model.placement": "pre"}, "n_trials": ...,
                  "best": {"number", "value", "params", "run_dir"} | null,
                  "importances": {param: share} | null, "importance_note": str,
                  "trials": [{"number", "state", "status", "reason", "value", "params",
                              "run_dir", "run_dirs", "seed_values",
                              "intermediate": {step: value}, "retry_of"}]}]}

The report builder reads this without importing Optuna; `load_study` gives the same mapping
for one study straight from a storage (a journal file, a database URL) or from study.json.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tzoo.components.errors import ConfigError, unknown_choice
from tzoo.recipes import rundir

from .spec import Sweep
from .storage import JOURNAL, StorageSpec, resolve_storage

STUDY_FILE = "study.json"
#: importances need a few completed trials to mean anything
MIN_TRIALS_FOR_IMPORTANCE = 2


def trial_data(trial: FrozenTrial) -> dict[str, Any]:
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
    return {
        "number": trial.number,
        "state": trial.state.name,
        "status": trial.user_attrs.get("status", trial.state.name.lower()),
        "reason": trial.user_attrs.get("reason") or "",
        "value": value,
        "params": dict(trial.params),
        "run_dir": trial.user_attrs.get("run_dir"),
        # seeds_per_trial > 1: every seed's run and its value (the trial's value is the mean)
        "run_dirs": trial.user_attrs.get("run_dirs") or [trial.user_attrs.get("run_dir")],
        "seed_values": trial.user_attrs.get("seed_values"),
        "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
        "retry_of": trial.system_attrs.get("failed_trial"),
        "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "completed": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }


def study_data(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if completed:
        chosen = study.best_trial
        best = {"number": chosen.number, "value": chosen.value, "params": dict(chosen.params),
                "run_dir": chosen.user_attrs.get("run_dir")}
    importances, note = importance(study, len(completed))
    return {
        "name": study.study_name,
        "fixed": study.user_attrs.get("fixed", {}),
        "metric": study.user_attrs.get("metric"),
        "direction": study.direction.name.lower(),
        "n_trials": len(trials),
        "counts": {state.name: sum(t.state == state for t in trials) for state in TrialState},
        "best": best,
        "importances": importances,
        "importance_note": note,
        "trials": [trial_data(t) for t in trials],
    }


def importance(study: optuna.Study, completed: int) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances (its default evaluator), or None and why not."""
    if completed < MIN_TRIALS_FOR_IMPORTANCE:
        return None, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return None, f"not computable: {error}"
    return {k: float(v) for k, v in values.items()}, "optuna.importance.get_param_importances"


def write_study_json(sweep: Sweep, storage: StorageSpec) -> Path:
    opened = storage.open()
    studies = []
    for spec in sweep.studies():
        study = optuna.load_study(study_name=spec.name, storage=opened)
        studies.append(study_data(study))
    path = sweep.runs_dir / STUDY_FILE
    rundir.write_json(path, {
        "sweep": sweep.name, "metric": sweep.metric, "direction": sweep.direction,
        "per": sweep.per, "storage": storage.label, "space": [p.key for p in sweep.space],
        "studies": studies,
    })
    return path


def load_study(path_or_storage: str | Path, name: str | None = None) -> dict[str, Any]:
    """One study as plain data (the shape of an entry of study.json's "studies").

    `path_or_storage`: a study.json file, a sweep's runs folder (its study.json, else its
    journal), a journal file, or a database URL. `name` picks the study; it may be left out
    when there is exactly one.
    """
    target = str(path_or_storage)
    path = Path(target)
    if "://" not in target and path.is_dir():
        path = path / STUDY_FILE if (path / STUDY_FILE).is_file() else path / JOURNAL
    if "://" not in target and path.suffix == ".json":
        if not path.is_file():
            raise ConfigError("file not found", source=str(path))
        studies = {s["name"]: s for s in json.loads(path.read_text())["studies"]}
        return studies[_pick(name, list(studies), str(path))]
    if "://" not in target and not path.is_file():
        raise ConfigError("file not found", source=str(path))
    storage = resolve_storage(target if "://" in target else str(path), path.parent).open()
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    chosen = _pick(name, names, target)
    return study_data(optuna.load_study(study_name=chosen, storage=storage))


def _pick(name: str | None, names: list[str], source: str) -> str:
    if name is None and len(names) == 1:
        return names[0]
    if name not in names:
        raise ConfigError(unknown_choice("study", name, names), source=source)
    return name
