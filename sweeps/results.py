"""A sweep's results, read one way: `SweepResult`, its studies as `StudyResult`s (every trial
with its per-seed runs, the best trial, the parameter importances, the optimisation history).

`tzoo sweep` prints its end-of-sweep summary from a `SweepResult` and writes the same object
as runs/<sweep>/study.json; `tzoo report` draws its sweep section from `StudyResult`s read by
`read_studies`. Nothing else reads a study, so the importances are computed here only.

    study.json = SweepResult.to_dict():
    {"sweep": ..., "metric": "val/loss", "direction": "minimize", "per": ..., "storage": ...,
     "space": [key, ...],
     "studies": [{"name": ..., "fixed": {"model.placement": "pre"}, "metric": ...,
                  "direction": ..., "n_trials": ..., "counts": {state: n},
                  "best": {"number", "value", "params", "run_dir"} | null,
                  "importances": {param: share} | null, "importance_note": str,
                  "trials": [{"number", "state", "status", "reason", "value", "params",
                              "run_dir", "run_dirs", "seed_values",
                              "intermediate": {step: value}, "retry_of",
                              "started", "completed"}]}]}

Which source is the truth: the Optuna storage. Workers append to it while the sweep runs, and
workers started by hand on other machines go on adding trials after the `tzoo sweep` that
wrote study.json has ended, so study.json is a snapshot: the storage as it was at the end of
the last `tzoo sweep` on this machine, converted by the same code. A reader therefore takes
the storage when it can reach it and the snapshot where it cannot: a runs folder copied or
archived without its journal, or a sweep whose database lives elsewhere (study.json only
names it, password hidden). Reading the snapshot needs no Optuna at all, not even the import,
and no importance fit; that is what lets a report be built from study.json alone. The
importances are PED-ANOVA's, named rather than left to Optuna's default (fANOVA before Optuna
5, random and needing scikit-learn): it is deterministic, so the same trials give the same
numbers from either source.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tzoo.components.errors import ConfigError, unknown_choice
from tzoo.recipes import rundir

from .storage import JOURNAL, resolve_storage

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from .spec import Sweep
    from .storage import StorageSpec

STUDY_FILE = "study.json"
#: what a sweep's runs folder holds its results in, the truth first (see the docstring)
RESULT_FILES = (JOURNAL, STUDY_FILE)
#: importances need a few completed trials to mean anything
MIN_TRIALS_FOR_IMPORTANCE = 2
#: how the importances are computed (see the docstring), for the notes and captions
IMPORTANCE_METHOD = "PED-ANOVA"


@dataclass(frozen=True)
class TrialResult:
    """One trial: Optuna's state, the run status behind it, its value and its runs."""

    number: int
    state: str  # TrialState name: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    status: str  # the run's status (completed, pruned, diverged, failed, lost, ...)
    reason: str
    value: float | None  # None when not finite, or when the study has several objectives
    params: dict[str, Any]
    run_dir: str | None
    run_dirs: list[str | None]  # seeds_per_trial > 1: every seed's run, in seed order
    seed_values: list[float] | None  # and each seed's value (the trial's value is the mean)
    intermediate: dict[str, float]  # training step (as text, as JSON keeps it) -> value
    retry_of: int | None  # the failed trial this one runs again
    started: str | None  # ISO times
    completed: str | None


@dataclass(frozen=True)
class BestTrial:
    number: int
    value: float
    params: dict[str, Any]
    run_dir: str | None


@dataclass(frozen=True)
class StudyResult:
    """One Optuna study of a sweep (a sweep with `per` has one per value)."""

    name: str
    fixed: dict[str, Any]  # the keys `per` holds fixed in this study
    metric: str | None
    direction: str | None  # minimize | maximize; None for a study of several objectives
    n_trials: int
    counts: dict[str, int]  # trials per TrialState name
    best: BestTrial | None
    importances: dict[str, float] | None  # most important first; None: see importance_note
    importance_note: str
    trials: list[TrialResult]

    @property
    def n_completed(self) -> int:
        return self.counts.get("COMPLETE", 0)

    def history(self) -> list[tuple[int, float, float]]:
        """(trial number, value, best value so far) of each completed trial, in trial order;
        empty for a study of several objectives (no single best)."""
        if self.direction is None:
            return []
        better = min if self.direction == "minimize" else max
        rows: list[tuple[int, float, float]] = []
        for trial in self.trials:
            if trial.state == "COMPLETE" and trial.value is not None:
                best = better(rows[-1][2], trial.value) if rows else trial.value
                rows.append((trial.number, trial.value, best))
        return rows

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyResult:
        best = data["best"]
        return cls(**{**data, "best": BestTrial(**best) if best is not None else None,
                      "trials": [TrialResult(**t) for t in data["trials"]]})


@dataclass(frozen=True)
class SweepResult:
    """A sweep's studies, with what the sweep file said about them."""

    sweep: str
    metric: str
    direction: str
    per: str | None
    storage: str  # the storage's label: a database password is never shown
    space: list[str]
    studies: list[StudyResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        return cls(**{**data, "studies": [StudyResult.from_dict(s) for s in data["studies"]]})


# --------------------------------------------------------------------------- from Optuna


def from_study(study: optuna.Study) -> StudyResult:
    """The one conversion of an Optuna study into results (and so of its importances)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    single = len(study.directions) == 1
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if completed and single:
        chosen = study.best_trial
        best = BestTrial(chosen.number, chosen.value, dict(chosen.params),
                         chosen.user_attrs.get("run_dir"))
    importances, note = _importances(study, len(completed))
    return StudyResult(
        name=study.study_name,
        fixed=study.user_attrs.get("fixed", {}),
        metric=study.user_attrs.get("metric"),
        direction=study.direction.name.lower() if single else None,
        n_trials=len(trials),
        counts={state.name: sum(t.state == state for t in trials) for state in TrialState},
        best=best,
        importances=importances,
        importance_note=note,
        trials=[_trial(t) for t in trials],
    )


def _trial(trial: FrozenTrial) -> TrialResult:
    values = trial.values or []
    value = values[0] if len(values) == 1 and math.isfinite(values[0]) else None
    return TrialResult(
        number=trial.number,
        state=trial.state.name,
        status=trial.user_attrs.get("status", trial.state.name.lower()),
        reason=trial.user_attrs.get("reason") or "",
        value=value,
        params=dict(trial.params),
        run_dir=trial.user_attrs.get("run_dir"),
        run_dirs=trial.user_attrs.get("run_dirs") or [trial.user_attrs.get("run_dir")],
        seed_values=trial.user_attrs.get("seed_values"),
        intermediate={str(k): v for k, v in sorted(trial.intermediate_values.items())},
        retry_of=trial.system_attrs.get("failed_trial"),
        started=trial.datetime_start.isoformat() if trial.datetime_start else None,
        completed=trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    )


def _importances(study: optuna.Study, completed: int) -> tuple[dict[str, float] | None, str]:
    """Parameter importances (summing to 1, most important first), or None and why not."""
    import optuna

    if completed < MIN_TRIALS_FOR_IMPORTANCE:
        return None, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials"
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        # A single parameter value, or several objectives: nothing to attribute.
        return None, f"not computable: {error}"
    return ({k: float(v) for k, v in values.items()},
            f"optuna.importance.get_param_importances ({IMPORTANCE_METHOD})")


def read_sweep(sweep: Sweep, storage: StorageSpec) -> SweepResult:
    """Every study of the sweep, from its storage (the truth)."""
    import optuna

    opened = storage.open()
    return SweepResult(
        sweep=sweep.name, metric=sweep.metric, direction=sweep.direction, per=sweep.per,
        storage=storage.label, space=[p.key for p in sweep.space],
        studies=[from_study(optuna.load_study(study_name=spec.name, storage=opened))
                 for spec in sweep.studies()])


def write_study_json(result: SweepResult, runs_dir: Path) -> Path:
    """The snapshot: runs/<sweep>/study.json."""
    path = runs_dir / STUDY_FILE
    rundir.write_json(path, result.to_dict())
    return path


# --------------------------------------------------------------------------- from any source


def read_studies(source: Any, name: str | None = None) -> list[StudyResult]:
    """Every study of `source`, or the one `name`d.

    `source`: an optuna.Study; a sweep's runs folder (its storage, else its study.json); a
    journal file; a study.json snapshot; or a database URL. Studies come in the order they
    were created, which for a sweep is its own order (the `per` values as listed).
    """
    if not isinstance(source, (str, Path)):
        return [from_study(_checked_study(source, name))]
    target = str(source)
    if "://" in target:
        return _from_storage(resolve_storage(target, Path()), target, name)
    path = _located(Path(target))
    if path.suffix == ".json":
        studies = {s["name"]: s for s in json.loads(path.read_text())["studies"]}
        return [StudyResult.from_dict(studies[n]) for n in _chosen(name, list(studies), path)]
    return _from_storage(resolve_storage(str(path), path.parent), str(path), name)


def read_study(source: Any, name: str | None = None) -> StudyResult:
    """One study of `source` (see `read_studies`); `name` may be left out when there is one."""
    studies = read_studies(source, name)
    if len(studies) != 1:
        raise ConfigError(f"{len(studies)} studies here, name one of: "
                          f"{', '.join(s.name for s in studies)}", source=str(source))
    return studies[0]


def load_study(source: Any, name: str | None = None) -> dict[str, Any]:
    """One study as plain data: the shape of an entry of study.json's "studies"."""
    return asdict(read_study(source, name))


def _located(path: Path) -> Path:
    """A runs folder stands for the file its results are in; a file must exist."""
    if path.is_dir():
        found = [path / f for f in RESULT_FILES if (path / f).is_file()]
        if not found:
            raise ConfigError(f"no sweep results here (expected {' or '.join(RESULT_FILES)})",
                              source=str(path))
        return found[0]
    if not path.is_file():
        raise ConfigError("file not found", source=str(path))
    return path


def _from_storage(storage: StorageSpec, source: str, name: str | None) -> list[StudyResult]:
    import optuna

    opened = storage.open()
    names = optuna.get_all_study_names(opened)
    return [from_study(optuna.load_study(study_name=n, storage=opened))
            for n in _chosen(name, names, source)]


def _checked_study(study: Any, name: str | None) -> optuna.Study:
    import optuna

    if not isinstance(study, optuna.Study):
        raise ConfigError(f"unsupported study source {study!r}: pass an optuna.Study, a runs "
                          "folder, a journal file, a study.json file or a database URL")
    _chosen(name, [study.study_name], study.study_name)
    return study


def _chosen(name: str | None, names: list[str], source: object) -> list[str]:
    """Every name, or the one asked for (ConfigError, with the choices, if it is not there)."""
    if name is None:
        return names
    if name not in names:
        raise ConfigError(unknown_choice("study", name, names), source=str(source))
    return [name]
