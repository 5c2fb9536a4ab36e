"""`tzoo sweep SWEEP.yaml [--workers N] [--devices 0,1,...] [--trials N] [--export best.yaml]
[--set KEY=VALUE]`, and `tzoo validate SWEEP.yaml` (`validate_command`).

Exit 0 when every study has its trials, 1 when the sweep stopped early (too many failed
trials) or there was nothing to export, 2 on bad input (raised as ConfigError), 130 on Ctrl-C.
Rerunning the same command continues the studies where they stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import optuna

from tzoo.components import build_model
from tzoo.components.errors import ConfigError
from tzoo.recipes.experiment import read_yaml
from tzoo.recipes.processes import choose_devices, device_env
from tzoo.recipes.runner import Interrupted
from tzoo.recipes.schema import SCHEMA
from tzoo.recipes.tasks import resolve_model

from .export import export_best
from .launch import run_workers
from .results import SweepResult, read_sweep, write_study_json
from .space import Param
from .spec import SWEEP_KEYS, load_sweep
from .worker import check_metric, prepare, work


def sweep_command(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"expected at least 1 worker, got {args.workers}", key="--workers")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happened
    devices = choose_devices(getattr(args, "devices", None))
    sweep = load_sweep(args.sweep, args.set, n_trials=args.trials)
    storage = prepare(sweep)
    print(f"{sweep.name}: {len(sweep.studies())} study(ies) x {sweep.n_trials} trials · "
          f"{sweep.sampler.name} sampler, {sweep.pruner.name} pruner · {args.workers} "
          f"worker(s) · storage {storage.label} · runs in {sweep.runs_dir}", flush=True)
    if sweep.grid_note:
        print(sweep.grid_note, flush=True)
    code = 0
    try:
        if args.workers == 1:
            os.environ.update(device_env(0, devices))  # before anything starts CUDA
            code = 1 if work(sweep, spec=storage).stopped else 0
        else:
            codes = run_workers(args.sweep, workers=args.workers, trials=args.trials,
                                overrides=list(args.set), devices=devices)
            code = 130 if 130 in codes else max(codes)
    except (Interrupted, KeyboardInterrupt):
        code = 130
    if code == 130:
        print("interrupted: running trials were checkpointed and queued again; run the same "
              "command to continue", file=sys.stderr)
    result = read_sweep(sweep, storage)
    print(f"study data: {write_study_json(result, sweep.runs_dir)}")
    _summary(result)
    if args.export and code != 130:
        written = export_best(sweep, result, args.export)
        for path in written:
            print(f"best trial exported: {path}  (run it: tzoo run {path})")
        if not written:
            print("nothing exported: no study has a completed trial", file=sys.stderr)
            code = code or 1
    return code


def _summary(result: SweepResult) -> None:
    for study in result.studies:
        counts = study.counts
        line = (f"  {study.name}: {counts['COMPLETE']} completed, "
                f"{counts['PRUNED']} pruned, {counts['FAIL']} failed")
        if study.best is not None:
            best = study.best
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in best.params.items())
            line += f"; best {result.metric} = {best.value:.4g} (trial {best.number}: {params})"
        print(line)


def is_sweep_file(path: str) -> bool:
    """Whether `path` holds a sweep rather than an experiment: a sweep has keys no experiment
    has (space, metric, n_trials, ...). An unreadable file is left to the experiment loader,
    which says what is wrong with it."""
    try:
        data = read_yaml(Path(path))
    except ConfigError:
        return False
    return any(key in data for key in set(SWEEP_KEYS) - set(SCHEMA))


def validate_command(path: str, overrides: list[str], *, data: bool) -> int:
    """`tzoo validate SWEEP.yaml [--data]`: everything `tzoo sweep` checks before its first
    trial (the metric among them), and the plan: studies, search space, model sizes."""
    sweep = load_sweep(path, overrides)
    studies = sweep.studies()
    for study in studies:
        check_metric(sweep, study, load_data=data)
    source = os.path.normpath(sweep.experiment.path) if sweep.experiment.path else \
        sweep.experiment.name
    print(f"{sweep.name}: sweep of {source} · {sweep.direction} {sweep.metric} · "
          f"{len(studies)} study(ies) x {sweep.n_trials} trials · {sweep.sampler.name} "
          f"sampler, {sweep.pruner.name} pruner -> {sweep.runs_dir}")
    seeds = sweep.trial_seeds
    steps = sweep.trial_config(studies[0], {})["train"]["steps"]
    print(f"  at most {len(studies) * sweep.n_trials * len(seeds):,} runs of {steps:,} steps "
          f"({len(seeds)} seed(s) a trial: {', '.join(map(str, seeds))}; pruning can stop "
          "some early)")
    if sweep.grid_note:
        print(f"  {sweep.grid_note}")
    for param in sweep.space:
        print(f"  search {param.key}: {_describe(param)}")
    for study in studies:
        model = build_model(resolve_model(sweep.trial_config(study, {})),
                            task_supplies_prefix=True)
        fixed = ", ".join(f"{k}={v}" for k, v in study.fixed.items()) or "—"
        print(f"  study {study.name:<40} fixed: {fixed:<30} {model.num_parameters():>10,} "
              "params")
    if not data:
        print("(without --data the corpus is not loaded: a test split's metric is checked "
              "when the sweep starts)")
    return 0


def _describe(param: Param) -> str:
    if param.kind == "categorical":
        return "one of " + ", ".join(map(str, param.choices))
    scale = ", log scale" if param.log else ""
    step = f", step {param.step:g}" if param.step else ""
    return f"{param.kind} in [{param.low:g}, {param.high:g}]{scale}{step}"
