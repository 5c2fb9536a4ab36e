"""What a set of runs is judged by, and what they could not measure.

The metric an experiment is judged by is its `eval.primary`, or its task's default
(`tzoo.recipes.tasks.judged_by`: loss for language modelling, BLEU then chrF for translation,
exact match then chrF on a generated corpus); reports and `tzoo compare` lead with it. A metric
a run could not measure (BLEU on one-word references, a length a position table cannot
represent) is recorded as null with the reason in the run's `not_applicable`; reports show
"n/a" and the reason, never a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tzoo.recipes import tasks
from tzoo.recipes.metrics import resolve

from .runs import Run


def _judged_by(config: dict[str, Any] | None) -> tuple[str, ...]:
    try:
        return tasks.judged_by(config or {})
    except (KeyError, TypeError, AttributeError):
        return ()  # a hand-written or partial config.yaml: no task to ask


def judged_by(runs: Iterable[Run]) -> list[str]:
    """The runs' judged-by metrics, most important first (the union over their configs, in
    order of first appearance, should several experiments be reported together)."""
    names: dict[str, None] = {}
    for run in runs:
        if run.has_summary:
            names.update(dict.fromkeys(_judged_by(run.config)))
    return list(names)


def leading(runs: Sequence[Run], present: Iterable[str]) -> list[str]:
    """The recorded metrics the runs are judged by, in the order a report shows them."""
    return resolve(judged_by(runs), present)


def declared(runs: Iterable[Run]) -> bool:
    """Whether an experiment file chose what it is judged by (`eval.primary`)."""
    return any(((r.config or {}).get("eval") or {}).get("primary") for r in runs)


def reason(runs: Iterable[Run], metric: str) -> str | None:
    """Why completed runs recorded `metric` as not applicable (None if none did)."""
    reasons = dict.fromkeys(
        str(r.task_fields["not_applicable"][metric]) for r in runs
        if r.completed and isinstance(r.task_fields.get("not_applicable"), dict)
        and metric in r.task_fields["not_applicable"])
    return "; ".join(reasons) or None


def not_applicable(runs: Sequence[Run], measured: Iterable[str]) -> dict[str, str]:
    """Metrics no completed run measured but some recorded as not applicable -> the reason."""
    measured = set(measured)
    names: dict[str, None] = {}
    for run in runs:
        found = run.task_fields.get("not_applicable") if run.completed else None
        if isinstance(found, dict):
            names.update(dict.fromkeys(str(m) for m in found if m not in measured))
    return {name: reason(runs, name) or "" for name in sorted(names)}
