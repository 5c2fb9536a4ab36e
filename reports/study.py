"""Accepting Optuna studies as a report input: a Study, a journal file, or a journal and name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tzoo.components.errors import ConfigError

# What build_report accepts: a Study, a journal path (every study in it: a sweep with `per`
# keeps one study per value), or a (journal path, study name) pair.
StudyInput = Any


def _journal(path: Path) -> Any:
    """The Optuna storage of a journal file."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def resolve_studies(study: StudyInput) -> list[Any]:
    """Every study the input names: a journal path gives all of its studies, by name."""
    import optuna

    if isinstance(study, (str, Path)) and Path(study).is_file():
        storage = _journal(Path(study))
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        return [optuna.load_study(study_name=name, storage=storage) for name in names]
    return [resolve_study(study)]


def resolve_study(study: StudyInput) -> Any:
    """An optuna.Study from any accepted form; ConfigError for a path that does not load."""
    import optuna  # imported here: most reports have no sweep and optuna is slow to import

    if isinstance(study, optuna.Study):
        return study
    if isinstance(study, (tuple, list)) and len(study) == 2:
        path, name = Path(study[0]), str(study[1])
    elif isinstance(study, (str, Path)):
        path, name = Path(study), None
    else:
        raise ConfigError(
            f"unsupported study input {study!r}: pass an optuna.Study, a journal file path, "
            "or (journal file path, study name)"
        )
    if not path.is_file():
        raise ConfigError(f"optuna journal file '{path}' does not exist")
    storage = _journal(path)
    try:
        # study_name=None works when the journal holds exactly one study.
        return optuna.load_study(study_name=name, storage=storage)
    except (KeyError, ValueError) as exc:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise ConfigError(
            f"could not load study {name!r} from '{path}': {exc}; studies there: {names}"
        ) from exc
