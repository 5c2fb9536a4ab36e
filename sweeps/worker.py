"""A sweep worker: the loop one process runs, study after study, until each has its trials.

Every process of a sweep (the N of `--workers N`, and any other command on any machine
pointing to the same storage) runs this same loop on the same named studies, so they
cooperate through the storage alone. Admission ("are more trials needed? then ask for one")
happens under the storage's lock, after failing the trials of dead workers, so the study ends
with exactly n_trials completed + pruned trials and no trial is lost.

    python -m tzoo.sweeps.worker SWEEP.yaml [--workers N] [--index I] [--trials N] [--set K=V]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
import torch
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from tzoo.components.errors import ConfigError, unknown_choice
from tzoo.recipes.data import prepare_data
from tzoo.recipes.quiet import quiet_lightning
from tzoo.recipes.runner import Interrupted
from tzoo.recipes.tasks import metric_names

from . import liveness
from .algorithms import make_pruner, make_sampler
from .spec import StudySpec, Sweep, load_sweep
from .storage import StorageSpec, admission_lock, resolve_storage
from .trial import run_trial

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class WorkerResult:
    trials: list[FrozenTrial] = field(default_factory=list)
    stopped: str = ""  # why the worker gave up early, if it did


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, cores() // max(1, workers))


def open_study(sweep: Sweep, study: StudySpec, storage: optuna.storages.BaseStorage,
               *, worker: int = 0) -> optuna.Study:
    """Create or load the named study, with this worker's sampler and pruner."""
    train = sweep.experiment.base["train"]
    loaded = optuna.create_study(
        storage=storage, study_name=study.name, direction=sweep.direction, load_if_exists=True,
        pruner=make_pruner(sweep.pruner, val_every=int(train["val_every"]),
                           steps=int(train["steps"])))
    if loaded.direction.name.lower() != sweep.direction:
        raise ConfigError(f"the study '{study.name}' in this storage was created to "
                          f"{loaded.direction.name.lower()}; use another name or storage",
                          key="direction", source=str(sweep.path))
    # Each worker, and each restart, draws different random numbers: the same seed would make
    # them all propose the same first points. Not the grid sampler: its trials record an index
    # into the grid as *it* shuffled it with its seed, so every worker must shuffle alike, or
    # two workers' indices name the same point and another point is never run.
    seed = sweep.seed if sweep.sampler.name == "grid" else \
        sweep.seed + 1000 * worker + len(loaded.trials)
    loaded.sampler = make_sampler(sweep.sampler, sweep.space, seed)
    if not loaded.user_attrs:
        loaded.set_user_attr("sweep", sweep.name)
        loaded.set_user_attr("metric", sweep.metric)
        loaded.set_user_attr("fixed", study.fixed)
    _same_space(sweep, study, loaded)
    return loaded


def _same_space(sweep: Sweep, study: StudySpec, loaded: optuna.Study) -> None:
    """A study keeps the space it was created with: trials from two spaces in one study
    would mislead the sampler and the report. The space is a study attribute (older studies:
    the distributions of their first trial)."""
    space = {param.key: distribution_to_json(param.distribution()) for param in sweep.space}
    stored = loaded.user_attrs.get("space")
    if stored is None:
        trials = loaded.get_trials(deepcopy=False)
        if not trials or not trials[0].distributions:
            loaded.set_user_attr("space", space)
            return
        stored = {key: distribution_to_json(d) for key, d in trials[0].distributions.items()}
    if stored != space:
        differ = sorted(key for key in {*stored, *space} if stored.get(key) != space.get(key))
        raise ConfigError(
            f"the study '{study.name}' in this storage searches another space (it differs "
            f"in {', '.join(differ)}); give the sweep another name, or another storage",
            key="space", source=str(sweep.path))


def prepare(sweep: Sweep) -> StorageSpec:
    """Everything that can fail on bad input, before any trial is asked: the data, the storage
    and the studies (created once here, so parallel workers never race to create them)."""
    for study in sweep.studies():
        check_metric(sweep, study, load_data=True)
    spec = resolve_storage(sweep.storage, sweep.runs_dir)
    try:
        storage = spec.open()
    except ImportError as error:
        raise ConfigError(f"cannot open the storage {spec.label}: {error} (for PostgreSQL: "
                          "pip install 'transformer-zoo[postgresql]')", key="storage",
                          source=str(sweep.path)) from None
    except (ValueError, optuna.exceptions.OptunaError, SQLAlchemyError) as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise ConfigError(f"cannot open the storage {spec.label}: {reason}", key="storage",
                          source=str(sweep.path)) from None
    for study in sweep.studies():
        open_study(sweep, study, storage)
    return spec


def check_metric(sweep: Sweep, study: StudySpec, *, load_data: bool) -> None:
    """Refuse a metric the trials would not record, before the storage or any run directory
    exists. Without the data (`tzoo validate` without --data) a test split's metric cannot be
    checked: the corpus says which test splits there are."""
    config = sweep.trial_config(study, {})
    splits: list[str] = list(prepare_data(config).corpus.splits) if load_data else ["test"]
    names = metric_names(config, splits)
    split = sweep.metric.partition("/")[0]
    if sweep.metric in names or (not load_data and split.startswith("test")):
        return
    raise ConfigError(unknown_choice("metric", sweep.metric, names), key="metric",
                      source=str(sweep.path))


def work(sweep: Sweep, *, workers: int = 1, index: int = 0, spec: StorageSpec | None = None,
         echo: Callable[[str], None] = print) -> WorkerResult:
    """Run trials until every study has n_trials completed + pruned ones. `spec`: the storage
    `prepare` returned, when the caller already prepared the sweep."""
    quiet_lightning()
    threads = threads_per_worker(workers)
    torch.set_num_threads(threads)
    spec = spec or prepare(sweep)
    storage = spec.open()
    result = WorkerResult()
    for study_spec in sweep.studies():
        study = open_study(sweep, study_spec, storage, worker=index)
        while True:
            trial, stopped = _admit(sweep, study, spec)
            if stopped:
                result.stopped = stopped
                echo(f"[{study.study_name}] {stopped}")
                return result
            if trial is None:
                break
            frozen = run_trial(sweep, study_spec, study, trial, threads=threads)
            result.trials.append(frozen)
            echo(describe(study.study_name, frozen, sweep.metric))
    return result


def _admit(sweep: Sweep, study: optuna.Study,
           spec: StorageSpec) -> tuple[optuna.Trial | None, str]:
    """(the next trial, or None when the study has its trials; why to stop, if so)."""
    with admission_lock(spec):
        for number in liveness.recover_stale(study):
            print(f"[{study.study_name}] trial {number} lost its worker: failed, queued again",
                  file=sys.stderr)
        trials = study.get_trials(deepcopy=False)
        failed = sum(t.state == TrialState.FAIL and t.user_attrs.get("status") == "failed"
                     for t in trials)
        if failed >= sweep.max_failures:
            return None, (f"stopping: {failed} trials failed (max_failures: "
                          f"{sweep.max_failures}); see their run directories' error.log")
        taken = sum(t.state in (*COUNTED, TrialState.RUNNING) for t in trials)
        if taken >= sweep.n_trials:
            return None, ""
        trial = study.ask()
        liveness.claim(trial)
        trial.set_user_attr("status", "running")
        return trial, ""


def describe(study: str, trial: FrozenTrial, metric: str) -> str:
    status = trial.user_attrs.get("status", trial.state.name.lower())
    value = f" {metric}={trial.value:.4g}" if trial.value is not None else ""
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    reason = trial.user_attrs.get("reason") or ""
    note = f" ({reason})" if reason and status != "completed" else ""
    return f"[{study}] trial {trial.number}: {status}{value} · {params}{note}"


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tzoo.sweeps.worker")
    parser.add_argument("sweep")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing this machine")
    parser.add_argument("--index", type=int, default=0, help="this worker's index")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    signal.signal(signal.SIGTERM, _stop)  # between runs too, not only while training
    try:
        sweep = load_sweep(args.sweep, args.set, n_trials=args.trials)
        result = work(sweep, workers=args.workers, index=args.index,
                      echo=lambda line: print(f"w{args.index} {line}", flush=True))
    except ConfigError as error:
        print(f"tzoo sweep: error: {error}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt):
        return 130
    return 1 if result.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
