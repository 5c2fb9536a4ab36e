"""tzoo.sweeps: Optuna hyperparameter sweeps over any dotted key of an experiment.

A sweep file names an experiment, a metric and a search space; every trial is a normal run
under runs/<sweep>/, studies live in Optuna's own storage (a journal file by default) and are
resumable, and several processes or machines can work on one study. See `spec.py` for the
file format and `worker.py` for how workers cooperate.
"""

from .export import best_experiment, export_best
from .spec import StudySpec, Sweep, load_sweep
from .storage import StorageSpec, resolve_storage
from .study_data import load_study, write_study_json
from .worker import prepare, work

__all__ = [
    "StorageSpec",
    "StudySpec",
    "Sweep",
    "best_experiment",
    "export_best",
    "load_study",
    "load_sweep",
    "prepare",
    "resolve_storage",
    "work",
    "write_study_json",
]
