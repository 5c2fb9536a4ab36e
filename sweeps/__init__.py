"""tzoo.sweeps: Optuna hyperparameter sweeps over any dotted key of an experiment.

A sweep file names an experiment, a metric and a search space; every trial is a normal run
under runs/<sweep>/, studies live in Optuna's own storage (a journal file by default) and are
resumable, and several processes or machines can work on one study. See `spec.py` for the
file format, `worker.py` for how workers cooperate and `results.py` for reading the results.
"""

from .export import best_experiment, export_best
from .results import (
    StudyResult,
    SweepResult,
    load_study,
    read_studies,
    read_study,
    read_sweep,
    write_study_json,
)
from .spec import StudySpec, Sweep, load_sweep
from .storage import StorageSpec, resolve_storage
from .worker import prepare, work

__all__ = [
    "StorageSpec",
    "StudyResult",
    "StudySpec",
    "Sweep",
    "SweepResult",
    "best_experiment",
    "export_best",
    "load_study",
    "load_sweep",
    "prepare",
    "read_studies",
    "read_study",
    "read_sweep",
    "resolve_storage",
    "work",
    "write_study_json",
]
