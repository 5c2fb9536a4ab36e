"""tzoo.sweeps: Optuna hyperparameter sweeps over any dotted key of an experiment.

A sweep file names an experiment, a metric and a search space; every trial is a normal run
under runs/<sweep>/, studies live in Optuna's own storage (a journal file by default) and are
resumable, and several processes or machines can work on one study. See `spec.py` for the
file format, `worker.py` for how workers cooperate and `results.py` for reading the results.

The names below are imported on first use, not with the package: `python -m
tzoo.sweeps.worker` imports this package before it runs the worker module, and a package that
had already imported `worker` would make runpy warn (and run a second copy of it); readers of
results (the reports) need none of the training machinery either.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_HOMES = {
    "best_experiment": "export", "export_best": "export",
    "StudyResult": "results", "SweepResult": "results", "load_study": "results",
    "read_studies": "results", "read_study": "results", "read_sweep": "results",
    "write_study_json": "results",
    "StudySpec": "spec", "Sweep": "spec", "load_sweep": "spec",
    "StorageSpec": "storage", "resolve_storage": "storage",
    "prepare": "worker", "work": "worker",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
