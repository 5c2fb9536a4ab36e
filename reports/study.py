"""Accepting a sweep's results as a report input; tzoo.sweeps.results does the reading.

What build_report accepts as `study`: an optuna.Study; a path (a sweep's runs folder, a
journal file or a study.json snapshot) or a database URL, for every study there (a sweep with
`per` keeps one study per value); or a (path or URL, study name) pair, for that one study.
A study.json alone is enough: the report then needs no access to the Optuna storage.
"""

from __future__ import annotations

from typing import Any

from tzoo.sweeps.results import StudyResult, read_studies, read_study

StudyInput = Any


def _source(study: StudyInput) -> tuple[Any, str | None]:
    """(where to read, which study or None for all) of a report input."""
    if isinstance(study, (tuple, list)) and len(study) == 2:
        return study[0], str(study[1])
    return study, None


def resolve_studies(study: StudyInput) -> list[StudyResult]:
    """Every study the input names; ConfigError for a source that does not read."""
    return read_studies(*_source(study))


def resolve_study(study: StudyInput) -> StudyResult:
    """The one study the input names (ConfigError when it names none or several)."""
    return read_study(*_source(study))
