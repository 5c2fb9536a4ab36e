"""`compare`: two experiments (or sets of run directories) side by side, metric by metric,
led by the metric they are judged by (`judged_by.py`); a metric neither side could measure
reads n/a with the reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tzoo.components.errors import ConfigError

from . import fmt, judged_by
from .direction import better, direction_word
from .document import Heading, Note, Paragraph, Table, to_markdown
from .runs import Run, group_by_variant, load_runs
from .stats import Summary, metric_names, metric_values, summarise, welch

Side = str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class Line:
    """One metric compared: both summaries' text, the better side's name, the p-value text."""

    scope: str  # the variant, when both sides hold several variants; '' otherwise
    metric: str
    a: str
    b: str
    better: str
    p: str


def _paths(side: Side) -> list[str]:
    return [str(side)] if isinstance(side, (str, Path)) else [str(p) for p in side]


def _name(side: Side) -> str:
    paths = _paths(side)
    return Path(paths[0]).resolve().name if len(paths) == 1 else f"{len(paths)} paths"


def _pairs(a: list[Run], b: list[Run]) -> list[tuple[str, list[Run], list[Run]]]:
    """What to compare: everything on each side, or variant by variant when both hold several
    (pooling different variants would average different models)."""
    groups_a, groups_b = group_by_variant(a), group_by_variant(b)
    if len(groups_a) <= 1 and len(groups_b) <= 1:
        return [("", a, b)]
    by_name = {g.name: g for g in groups_b}
    pairs = [(g.name, g.runs, by_name[g.name].runs) for g in groups_a if g.name in by_name]
    if not pairs:
        raise ConfigError(
            "both sides hold several variants and none in common; compare single-variant "
            "experiments or pass the run directories to compare"
        )
    return pairs


def _ordered(runs: list[Run]) -> list[str]:
    """Every measured metric, the ones the runs are judged by first."""
    measured = metric_names(runs)
    leading = judged_by.leading(runs, measured)
    return [*leading, *(m for m in measured if m not in leading)]


def compare_lines(runs_a: list[Run], runs_b: list[Run], name_a: str,
                  name_b: str) -> list[Line]:
    """Per (variant,) metric: mean ± std of each side and which side is better (a tie when
    both means read the same at the precision shown)."""
    lines = []
    for scope, side_a, side_b in _pairs(runs_a, runs_b):
        for metric in _ordered([*side_a, *side_b]):
            va, vb = metric_values(side_a, metric), metric_values(side_b, metric)
            sa, sb = summarise(va), summarise(vb)
            verdict = better(metric, sa.mean if sa else None, sb.mean if sb else None)
            if verdict and fmt.num(sa.mean) == fmt.num(sb.mean):
                verdict = 0
            # None (unknown direction or a side without values) names no winner.
            winner = {-1: name_a, 1: name_b, 0: "tie"}.get(verdict, "—") if verdict is not None \
                else "—"
            p = "—"
            if va and vb:
                d = welch(vb, va)
                p = fmt.p_value(d.p_value) if d.p_value is not None else (d.note or "—")
            lines.append(Line(scope, metric, _shown(sa, side_a, metric),
                              _shown(sb, side_b, metric), winner, p))
        both = [*side_a, *side_b]
        for metric in judged_by.not_applicable(both, metric_names(both)):
            lines.append(Line(scope, metric, "n/a", "n/a", "—", "—"))
    return lines


def _shown(summary: Summary | None, runs: list[Run], metric: str) -> str:
    if summary is None and judged_by.reason(runs, metric):
        return "n/a"
    return fmt.mean_std(summary)


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def compare(a: Side, b: Side) -> tuple[str, str]:
    """(terminal text, markdown) comparing two experiments / run dirs / lists of run dirs."""
    runs_a, runs_b = load_runs(_paths(a)), load_runs(_paths(b))
    name_a, name_b = _name(a), _name(b)
    if name_a == name_b:
        name_a, name_b = f"A ({name_a})", f"B ({name_b})"
    lines = compare_lines(runs_a, runs_b, name_a, name_b)
    scoped = any(line.scope for line in lines)
    headers = (["variant"] if scoped else []) + ["metric", name_a, name_b, "better", "p"]
    rows = [([line.scope] if scoped else []) + [line.metric, line.a, line.b, line.better,
                                                line.p] for line in lines]
    fps_a = {r.data_fingerprint for r in runs_a if r.has_summary}
    fps_b = {r.data_fingerprint for r in runs_b if r.has_summary}
    warning = ""
    if fps_a != fps_b:
        warning = (f"Warning: the two sides were trained on different data (fingerprints "
                   f"{sorted(fps_a)} vs {sorted(fps_b)}); differences mix model and data.")
    counts = (f"{name_a}: {sum(r.completed for r in runs_a)} completed of {len(runs_a)} runs; "
              f"{name_b}: {sum(r.completed for r in runs_b)} completed of {len(runs_b)} runs.")
    method = ("mean ± std over completed seeds; 'better' by each metric's direction "
              "(loss/ppl/bpc lower, bleu/chrf/exact_match/accuracy higher); p: Welch's t-test.")
    directions = {line.metric: direction_word(line.metric) for line in lines}
    unknown = sorted(m for m, w in directions.items() if w == "direction unknown")
    tail = f" No direction known for: {', '.join(unknown)}." if unknown else ""
    everything = [*runs_a, *runs_b]
    judged = judged_by.judged_by(everything)
    if judged:
        tail += f" Judged by: {', then '.join(judged)}."
    missing = judged_by.not_applicable(everything, metric_names(everything))
    by_reason: dict[str, list[str]] = {}
    for metric, why in missing.items():
        by_reason.setdefault(why, []).append(metric)
    for why, metrics in by_reason.items():
        tail += f" n/a for {', '.join(metrics)}: {why or 'no reason recorded'}."

    text_parts = [f"Compare {name_a} vs {name_b}", counts]
    if warning:
        text_parts.append(warning)
    text_parts += ["", _text_table(headers, rows) if rows else "(no metrics to compare)", "",
                   method + tail]
    blocks = [Heading(2, f"{name_a} vs {name_b}"), Paragraph(counts)]
    if warning:
        blocks.append(Note(f"**{warning}**"))
    if rows:
        blocks.append(Table(headers, [[f"`{c}`" if i == (1 if scoped else 0) else c
                                       for i, c in enumerate(r)] for r in rows],
                            [False] * (2 if scoped else 1) + [True, True, False, True]))
    blocks.append(Paragraph(method + tail))
    return "\n".join(text_parts) + "\n", to_markdown(blocks)
