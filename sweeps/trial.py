"""One trial: its parameters become a normal run of the experiment, trained by the runner, and
the run's outcome becomes the trial's state.

The run directory is runs/<sweep>/<run id>, the id derived from the resolved configuration as
for any experiment, so `tzoo report runs/<sweep>` reads the trials, and a trial retried after
its worker died finds (and resumes) the same directory. `trial.json` beside the summary says
which study and trial numbers trained it.

    run status   ->  trial state
    completed        COMPLETE, value = the run's final metric
    pruned           PRUNED (the pruner stopped it)
    diverged         PRUNED, user_attrs status/reason: it counts toward n_trials and tells the
                     sampler the region is bad, where FAIL would be ignored and resampled
    failed           FAIL, with the error as reason
    interrupted      FAIL, queued again (the run resumes from its checkpoint next time)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.trial import FrozenTrial, TrialState

from tzoo.components.errors import ConfigError, unknown_choice
from tzoo.recipes import rundir
from tzoo.recipes.experiment import RunSpec, run_id
from tzoo.recipes.runner import Interrupted, RunOutcome, run_one

from . import liveness
from .pruning import PruneOnValidation
from .spec import StudySpec, Sweep

TRIAL_FILE = "trial.json"
LOCKS = ".locks"


@dataclass
class TrialRun:
    """A trial's run: the configuration, the run spec and where it lives."""

    spec: RunSpec
    run_dir: Path


def plan_trial(sweep: Sweep, study: StudySpec, values: dict[str, Any],
               threads: int | None = None, seed: int | None = None) -> TrialRun:
    config = sweep.trial_config(study, values)
    if threads:  # this worker's share of the cores; not part of the run id
        config["train"]["threads"] = min(config["train"].get("threads") or threads, threads)
    shown = {key: _rounded(v) for key, v in {**study.fixed, **values}.items()}
    seed = sweep.run_seed if seed is None else seed
    spec = RunSpec(config=config, variant=shown, seed=seed, is_base=False)
    spec.run_id = run_id(config, spec.seed, shown)
    return TrialRun(spec, sweep.runs_dir / spec.run_id)


def _rounded(value: Any) -> Any:
    """Four significant digits in the run's label; the configuration keeps the exact value."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def run_trial(sweep: Sweep, study_spec: StudySpec, study: optuna.Study, trial: optuna.Trial,
              *, threads: int | None = None) -> FrozenTrial:
    """Train the trial's run (one per seed of `seeds_per_trial`) and tell Optuna how it ended;
    Ctrl-C re-raises `Interrupted`. With several seeds the pruner watches the first seed's
    run (the one every trial has), and the objective is the mean over the seeds."""
    values = {param.key: param.suggest(trial) for param in sweep.space}
    plans = [plan_trial(sweep, study_spec, values, threads, seed) for seed in sweep.trial_seeds]
    trial.set_user_attr("run_dir", str(plans[0].run_dir))
    trial.set_user_attr("run_id", plans[0].spec.run_id)
    if len(plans) > 1:
        trial.set_user_attr("run_dirs", [str(p.run_dir) for p in plans])
    for planned in plans:
        record_trial(planned.run_dir, study.study_name, trial.number)
    pruner = PruneOnValidation(trial, sweep.metric)
    outcomes: list[RunOutcome] = []
    try:
        with liveness.heartbeat(trial):
            for index, planned in enumerate(plans):
                with one_trainer(planned.run_dir):
                    outcomes.append(run_one(planned.spec, planned.run_dir, sweep.name,
                                            runs_root=sweep.runs_dir.parent,
                                            callbacks=[pruner] if index == 0 else []))
                if outcomes[-1].status != "completed":
                    break  # a diverged or failed seed decides the trial
    except optuna.TrialPruned as pruned:
        return _finish(study, trial, TrialState.PRUNED, "pruned", str(pruned))
    except Interrupted:
        frozen = _finish(study, trial, TrialState.FAIL, "interrupted",
                         "stopped by the user; queued again, the run resumes")
        liveness.retry(study, frozen, max_retry=None)
        raise
    except ConfigError as error:  # bad input: every trial would fail the same way
        _finish(study, trial, TrialState.FAIL, "failed", str(error))
        raise
    finally:
        for planned in plans:
            record_trial(planned.run_dir, study.study_name, trial.number)
    return _tell(sweep, study, trial, outcomes)


def one_trainer(run_dir: Path) -> FileLock:
    """Held while a worker trains `run_dir`. Two trials can want the same run (a sampler that
    proposes a point again while its first trial still trains): the second waits here, then
    finds the run completed and takes its result, instead of two processes writing one
    directory. The lock lives in runs/<sweep>/.locks/; the OS drops it if its worker dies."""
    folder = run_dir.parent / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"{run_dir.name}.lock"))


def _tell(sweep: Sweep, study: optuna.Study, trial: optuna.Trial,
          outcomes: list[RunOutcome]) -> FrozenTrial:
    values = []
    for outcome in outcomes:
        if outcome.status == "diverged":
            return _finish(study, trial, TrialState.PRUNED, "diverged", outcome.note)
        if outcome.status != "completed":
            return _finish(study, trial, TrialState.FAIL, outcome.status, outcome.note)
        summary = rundir.read_summary(outcome.run_dir)
        metrics = summary.metrics if summary else {}
        if sweep.metric not in metrics:
            _finish(study, trial, TrialState.FAIL, "failed", f"no metric {sweep.metric!r}")
            raise ConfigError(unknown_choice("metric", sweep.metric, metrics), key="metric",
                              source=str(sweep.path))
        value = metrics[sweep.metric]
        why = (summary.task_fields.get("not_applicable") or {}).get(sweep.metric)
        if value is None and why:  # BLEU on one-word references: no trial can score it
            _finish(study, trial, TrialState.FAIL, "failed", f"{sweep.metric} is n/a")
            raise ConfigError(f"'{sweep.metric}' is not applicable to these runs: {why}; "
                              "name another metric", key="metric", source=str(sweep.path))
        if value is None:  # the runner stores a NaN or infinite metric as null
            return _finish(study, trial, TrialState.PRUNED, "diverged",
                           f"{sweep.metric} is not finite")
        values.append(float(value))
    if len(values) > 1:
        trial.set_user_attr("seed_values", values)
    return _finish(study, trial, TrialState.COMPLETE, "completed", "",
                   value=sum(values) / len(values))


def _finish(study: optuna.Study, trial: optuna.Trial, state: TrialState, status: str,
            reason: str, value: float | None = None) -> FrozenTrial:
    trial.set_user_attr("status", status)
    trial.set_user_attr("reason", reason)
    return study.tell(trial, value, state=state)


def record_trial(run_dir: Path, study_name: str, number: int) -> None:
    """trial.json: the study and every trial number that trained this run (a retried trial
    has a new number but the same run)."""
    path = run_dir / TRIAL_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    numbers = [n for n in record.get("trials", []) if n != number] + [number]
    rundir.write_json(path, {"study": study_name, "trial": number, "trials": numbers})
