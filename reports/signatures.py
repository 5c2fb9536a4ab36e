"""The sacreBLEU signature under every BLEU and chrF table: which BLEU a figure is (tokeniser,
smoothing, number of references, sacreBLEU's version), as its runs recorded it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .document import Note
from .runs import Run

#: a metric whose figure needs a signature: `<split>/bleu`, `<split>/chrf`
SIGNED = ("bleu", "chrf")


def signature_note(runs: Sequence[Run], metric: str) -> Note | None:
    """'`test/bleu`: sacreBLEU signature `nrefs:1|...`' for a BLEU or chrF metric, with the
    run counts when runs disagree or some recorded none (runs from before signatures)."""
    if metric.rsplit("/", 1)[-1] not in SIGNED:
        return None
    reported = [r for r in runs if r.completed and r.metrics.get(metric) is not None]
    signatures = Counter(str(r.task_fields.get("signatures", {}).get(metric) or "")
                         for r in reported)
    missing = signatures.pop("", 0)
    if not signatures:
        return None
    if len(signatures) == 1 and not missing:
        return Note(f"`{metric}`: sacreBLEU signature `{next(iter(signatures))}`")
    parts = [f"`{signature}` ({count} runs)" for signature, count in signatures.most_common()]
    if missing:
        parts.append(f"none recorded ({missing} runs)")
    return Note(f"`{metric}`: sacreBLEU signatures {', '.join(parts)}")
