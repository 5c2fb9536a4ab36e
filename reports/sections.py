"""The report's sections, each a function from loaded data to document blocks.

Nothing here writes files except through the plot and probe functions it calls; `build.py`
decides where things go and renders the blocks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tzoo.components.errors import ConfigError
from tzoo.recipes.metrics import TEST, VALIDATION, split_metric
from tzoo.sweeps.results import IMPORTANCE_METHOD, StudyResult

from . import fmt, judged_by, plots
from .direction import better, direction_word, lower_is_better
from .document import Block, Bullets, Code, Heading, Image, Note, Paragraph, Table
from .probe_runner import Loader, probe_run, safe_name
from .runs import Run, VariantGroup, group_by_fingerprint, group_by_variant
from .signatures import signature_note
from .stats import (
    TEST_DESCRIPTION,
    MetricRow,
    compare_metric,
    mean_of,
    metric_names,
    metric_values,
    summarise,
    transform_families,
)
from .sweep_landscape import COLOUR_QUANTILE, sweep_landscape

STAT_HEADERS = ["variant", "seeds", "mean ± std", "95% CI", "Δ vs base", "p"]
ONE_SEED_BEST = ("from one seed: a single draw, with no spread to tell the difference from "
                 "chance")
COST_HEADERS = ["params", "tokens/s", "peak mem (MB)", "wall time"]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# ---------------------------------------------------------------------------------------------
# header


def _versions(runs: Sequence[Run]) -> list[str]:
    """'torch 2.13.0' per package, or every value with its run count when runs disagree."""
    values: dict[str, Counter[str]] = {}
    for run in runs:
        for key, value in run.versions.items():
            values.setdefault(key, Counter())[value] += 1
    lines = []
    for key, counter in values.items():
        if len(counter) == 1:
            lines.append(f"{key} `{next(iter(counter))}`")
        else:
            mixed = ", ".join(f"`{v}` ({n} runs)" for v, n in counter.most_common())
            lines.append(f"{key} {mixed} — mixed")
    return lines


def header(runs: Sequence[Run], title: str, command: str, generated: str) -> list[Block]:
    """Title, the exact command, experiments, fingerprints and versions."""
    with_summary = [r for r in runs if r.has_summary]
    experiments = sorted({r.experiment for r in runs})
    fingerprints = group_by_fingerprint(with_summary)
    completed = sum(r.completed for r in runs)
    items = [
        f"**Experiment:** {', '.join(f'`{e}`' for e in experiments)}",
        f"**Runs:** {len(runs)} ({completed} completed, {len(runs) - completed} not)",
        "**Data fingerprint:** "
        + (", ".join(f"`{fp}` ({len(rs)} runs)" for fp, rs in fingerprints.items()) or "—"),
    ]
    versions = _versions(with_summary)
    if versions:
        items.append("**Versions:** " + "; ".join(versions))
    judged = judged_by.judged_by(with_summary)
    if judged:
        source = ("`eval.primary`" if judged_by.declared(with_summary)
                  else "the task's default for this corpus; `eval.primary` sets it")
        items.append(f"**Judged by:** {', then '.join(f'`{m}`' for m in judged)} ({source})")
    blocks: list[Block] = [
        Heading(1, title),
        Paragraph(f"Generated {generated} by:"),
        Code(command),
        Bullets(items),
    ]
    if len(fingerprints) > 1:
        blocks.append(Note(
            f"**Warning:** these runs were trained on {len(fingerprints)} different data sets "
            "(data fingerprints differ). Runs with different data are never pooled: each "
            "fingerprint gets its own tables and plots below, and numbers should not be "
            "compared across them."
        ))
    return blocks


# ---------------------------------------------------------------------------------------------
# results


def _seeds(group: VariantGroup, row: MetricRow) -> str:
    n = row.summary.n if row.summary else 0
    others = Counter(r.status for r in group.runs if not r.completed)
    extra = "".join(f" +{count} {status}" for status, count in sorted(others.items()))
    return f"{n}{extra}"


@dataclass(frozen=True)
class Best:
    """The outcome of looking for the best variant on one metric."""

    variant: str | None  # the one best mean; None when there is no single one
    tied: tuple[str, ...] = ()  # the variants sharing the best mean, when they tie
    one_seed: bool = False  # some variant compared has a single seed: no spread to judge by


def best_variant(rows: Sequence[MetricRow], metric: str) -> Best:
    """The variant with the best mean, marked only where a difference exists: with fewer
    than two variants measured, an unknown direction, or a tie at the precision the tables
    show (`fmt.num`: BLEU 0.000 everywhere, exact match 100.0 everywhere), there is none."""
    scored = [r for r in rows if r.summary is not None]
    if len(scored) < 2 or lower_is_better(metric) is None:
        return Best(None)
    best = scored[0]
    for row in scored[1:]:
        if better(metric, row.summary.mean, best.summary.mean) == -1:
            best = row
    one_seed = any(r.summary.n < 2 for r in scored)
    shown = fmt.num(best.summary.mean)
    tied = tuple(r.variant for r in scored if fmt.num(r.summary.mean) == shown)
    if len(tied) > 1:
        return Best(None, tied, one_seed)
    return Best(best.variant, (), one_seed)


def _best_note(best: Best) -> list[Block]:
    if best.variant is None or not best.one_seed:
        return []
    return [Paragraph(f"*Bold marks the best mean ({ONE_SEED_BEST}).*")]


def _cell_references(groups: Sequence[VariantGroup]) -> bool:
    """Whether comparisons are against cells of an `ablate.reference` rather than the base."""
    return any(g.is_reference and not g.is_base for g in groups)


def _anchor_mark(group: VariantGroup) -> str:
    if group.is_base and group.is_reference:
        return " (base)"
    return " (reference)" if group.is_reference else ""


def metric_table(groups: Sequence[VariantGroup], metric: str, *, costs: bool,
                 companions: Sequence[str] = (), digits: int = fmt.TABLE_DIGITS) -> Table:
    """One row per variant: seeds, mean ± std, CI, Δ and p (and cost columns if asked).
    `companions`: monotone transforms of `metric` (perplexity, bits per character), shown as
    mean ± std columns of the same table. Every number has `digits` significant digits
    (p-values `fmt.P_DIGITS`)."""
    rows = compare_metric(groups, metric)
    best = best_variant(rows, metric).variant
    table_rows = []
    for group, row in zip(groups, rows, strict=True):
        delta, p = fmt.delta(row.delta, digits)
        name = f"`{row.variant}`" + _anchor_mark(group)
        value = fmt.mean_std(row.summary, digits)
        if row.summary is None and judged_by.reason(group.runs, metric):
            value = "n/a"
        if row.variant == best:
            value = f"**{value}**"
        line = [name, _seeds(group, row), value, fmt.ci(row.summary, digits), delta, p]
        line += [fmt.mean_std(summarise(metric_values(group.runs, other)), digits)
                 for other in companions]
        if costs:
            done = group.completed
            line += [
                fmt.count(mean_of(r.params for r in done), digits),
                fmt.count(mean_of(r.tokens_per_s for r in done), digits),
                fmt.num(mean_of(r.peak_mem_mb for r in done), digits),
                fmt.duration(mean_of(r.wall_s for r in done), digits),
            ]
        table_rows.append(line)
    stat_headers = list(STAT_HEADERS)
    if companions:  # name the lead's column too, beside its transforms'
        stat_headers[2] = f"`{metric}` mean ± std"
    headers = stat_headers + [f"`{m}` mean ± std" for m in companions] + (
        COST_HEADERS if costs else [])
    if _cell_references(groups):
        headers = [h.replace("Δ vs base", "Δ vs reference") for h in headers]
    numeric = [False] + [True] * (len(headers) - 1)
    return Table(headers, table_rows, numeric)


def _takeaways(groups: Sequence[VariantGroup], metric: str) -> list[str]:
    rows = compare_metric(groups, metric)
    lines = []
    best = best_variant(rows, metric)
    caveat = f" ({ONE_SEED_BEST})" if best.one_seed else ""
    if best.variant is not None:
        lines.append(f"Best mean `{metric}`: `{best.variant}`{caveat}.")
    elif best.tied:
        shown = fmt.num(next(r.summary.mean for r in rows if r.variant == best.tied[0]))
        names = ", ".join(f"`{v}`" for v in best.tied)
        lines.append(f"No single best `{metric}`: {names} tie at {shown}.")
    significant = 0
    for row in rows:
        d = row.delta
        if d is None or d.p_value is None or d.p_value >= 0.05:
            continue
        significant += 1
        verdict = better(metric, d.diff, 0.0)
        word = {-1: "better", 1: "worse"}.get(verdict or 0, "different")
        versus = "its reference" if _cell_references(groups) else "the base"
        lines.append(
            f"`{row.variant}` is {word} than {versus} on `{metric}` "
            f"({fmt.signed(d.diff)}, p = {fmt.p_value(d.p_value)})."
        )
    tested = any(r.delta is not None and r.delta.p_value is not None for r in rows)
    if lines and not significant and tested:
        versus = "its reference" if _cell_references(groups) else "the base"
        lines.append(f"No difference to {versus} on `{metric}` is significant at p < 0.05.")
    return lines


def not_applicable_note(runs: Sequence[Run], measured: Sequence[str]) -> list[Block]:
    """The metrics no run could measure, each read as n/a with its reason."""
    missing = judged_by.not_applicable(runs, measured)
    by_reason: dict[str, list[str]] = {}
    for metric, why in missing.items():
        by_reason.setdefault(why, []).append(f"`{metric}`")
    lines = [f"{', '.join(names)}: n/a — {why or 'no reason recorded'}."
             for why, names in by_reason.items()]
    return [Note("**Not applicable:** " + " ".join(lines))] if lines else []


def validation_twin(runs: Sequence[Run], metric: str, metrics: Sequence[str]) -> str | None:
    """The `val/...` metric a `test/...` metric repeats exactly in every completed run (a corpus
    without a test split evaluates its validation split twice), else None."""
    split, name = split_metric(metric)
    twin = f"{VALIDATION}/{name}"
    if split != TEST or twin not in metrics:
        return None
    pairs = [(r.metrics.get(metric), r.metrics.get(twin)) for r in runs if r.completed]
    pairs = [(a, b) for a, b in pairs if a is not None or b is not None]
    return twin if pairs and all(a == b for a, b in pairs) else None


def extrapolation_table(groups: Sequence[VariantGroup], names: Sequence[tuple[float, str]],
                        base: str) -> Table:
    """One compact row per variant: mean ± std at each evaluation length (N/A shown as such)."""
    rows = []
    for group in groups:
        cells = []
        for _, name in names:
            summary = summarise(metric_values(group.runs, name))
            cells.append(fmt.mean_std(summary) if summary else "n/a")
        if any(c != "n/a" for c in cells):
            rows.append([f"`{group.name}`", *cells])
    headers = ["variant", *(f"`{base}` at {m:g}× context" for m, _ in names)]
    return Table(headers, rows, [False] + [True] * len(names))


def results(runs: Sequence[Run], root: Path, plot_dir: Path, level: int,
            prefix: str = "", reference: dict[str, Any] | None = None) -> list[Block]:
    """Tables and plots for runs sharing one data fingerprint."""
    groups = group_by_variant(runs, reference)
    metrics = metric_names(runs)
    if not metrics:
        return [Paragraph("No completed run reported any metric: nothing to compare."),
                *figures(groups, metrics, root, plot_dir, level, prefix)]
    # The @Nx context-length metrics get one compact table of their own instead of one
    # full table each.
    families = plots.extrapolation_metrics(metrics)
    leading = judged_by.leading(runs, metrics)
    plain = [m for m in metrics if "@" not in m] or metrics
    plain = [*leading, *(m for m in plain if m not in leading)]
    primary = plain[0]
    # a loss and its monotone transforms (ppl, bpc) share one table, the primary's first
    tables = transform_families(plain)
    tables.sort(key=lambda family: primary not in family)
    description = TEST_DESCRIPTION
    if _cell_references(groups):
        description = description.replace(
            "Δ vs base is the variant mean minus the base mean",
            "Δ vs reference is the variant mean minus its reference's mean")
    blocks: list[Block] = [Paragraph(
        "Statistics over completed runs only (non-completed runs are listed in their own "
        f"section). {description}"
    )]
    if _cell_references(groups):
        anchors = ", ".join(f"`{g.name}`" for g in groups if g.is_reference)
        blocks.append(Paragraph(
            "Each variant is compared with its reference: the variant with the reference's "
            f"values on those axes and its own on the others (references: {anchors})."))
    elif not any(g.is_reference for g in groups):
        blocks.append(Note("No base variant among these runs: Δ and p are not available "
                           "(for a grid, `tzoo report --reference AXIS=VALUE` or "
                           "`ablate.reference` names what to compare with)."))
    takeaways = _takeaways(groups, primary)
    if takeaways:
        blocks.append(Bullets(takeaways))
    blocks += not_applicable_note(runs, metrics)
    for lead, *companions in tables:
        twin = validation_twin(runs, lead, metrics) if lead != primary else None
        if twin is not None:
            blocks.append(Note(
                f"`{lead}` equals `{twin}` in every completed run: this corpus has no test "
                "split, so its validation split doubles as the test split "
                "(recipes/corpora/splits.py). Its table would repeat the one above and is "
                "left out; it is not a held-out estimate."))
            continue
        also = f", with {', '.join(f'`{m}`' for m in companions)}" if companions else ""
        cost = " and cost" if primary == lead or primary in companions else ""
        blocks.append(Heading(level + 1, f"`{lead}` ({direction_word(lead)}){also}{cost}"))
        if companions:
            named = ", ".join(f"`{m}`" for m in companions)
            what = "are monotone transforms" if len(companions) > 1 else \
                "is a monotone transform"
            blocks.append(Paragraph(
                f"{named} {what} of `{lead}` (perplexity = e^loss, bits = loss / ln 2 per "
                "character or byte), ranking the variants alike: one table, whose CI, Δ and "
                f"p are `{lead}`'s."))
        blocks.append(metric_table(groups, lead, costs=bool(cost), companions=companions))
        blocks += _best_note(best_variant(compare_metric(groups, lead), lead))
        blocks += filter(None, [signature_note(runs, lead)])
    if families:
        blocks.append(Heading(level + 1, "Length extrapolation"))
        blocks.append(Paragraph(
            "Mean ± std over seeds when evaluated on contexts longer than in training; "
            "n/a: the variant cannot represent that length (e.g. learned positions past "
            "their table)."
        ))
        for base, names in families.items():
            blocks.append(extrapolation_table(groups, names, base))
        path = plots.extrapolation(groups, metrics, plot_dir / f"{prefix}extrapolation.png")
        if path is not None:
            blocks.append(Image(_rel(path, root), "Length extrapolation",
                                "Loss against evaluation context length; a line stops where "
                                "the variant is not applicable."))
    blocks += figures(groups, metrics, root, plot_dir, level, prefix)
    return blocks


def figures(groups: Sequence[VariantGroup], metrics: Sequence[str], root: Path,
            plot_dir: Path, level: int, prefix: str) -> list[Block]:
    """The standard plots; any that has nothing to show is left out, with no empty figure."""
    made = [
        ("Loss curves", plots.loss_curves(groups, plot_dir / f"{prefix}loss_curves.png"),
         "Training and validation loss per variant: mean over seeds, band min–max; dashed "
         "lines are runs that did not complete."),
        ("Final metrics", plots.final_metrics(groups, metrics,
                                              plot_dir / f"{prefix}final_metrics.png"),
         "Mean per variant with 95% confidence interval; grey dots are individual seeds."),
        ("Gradient norms", plots.grad_norms(groups, plot_dir / f"{prefix}grad_norms.png"),
         "Gradient norm of each layer over training, one panel per variant."),
    ]
    blocks: list[Block] = []
    for title, path, caption in made:
        if path is not None:
            blocks += [Heading(level + 1, title), Image(_rel(path, root), title, caption)]
    return blocks


def all_results(runs: Sequence[Run], root: Path, plot_dir: Path,
                reference: dict[str, Any] | None = None) -> list[Block]:
    """Results per data fingerprint (one section when all runs share the data)."""
    fingerprints = group_by_fingerprint([r for r in runs if r.has_summary])
    if not fingerprints:
        return [Heading(2, "Results"), Paragraph("No run has a summary yet.")]
    if len(fingerprints) == 1:
        (only,) = fingerprints.values()
        return [Heading(2, "Results"), *results(only, root, plot_dir, level=2,
                                                reference=reference)]
    blocks: list[Block] = []
    for i, (fp, group) in enumerate(fingerprints.items(), start=1):
        blocks.append(Heading(2, f"Results for data `{fp}`"))
        blocks += results(group, root, plot_dir, level=2, prefix=f"data{i}_",
                          reference=reference)
    return blocks


# ---------------------------------------------------------------------------------------------
# runs that did not complete, and the full run list


def not_completed(runs: Sequence[Run]) -> list[Block]:
    """Every run that is not 'completed', with its status and reason: never dropped."""
    bad = [r for r in runs if not r.completed]
    blocks: list[Block] = [Heading(2, "Runs that did not complete")]
    if not bad:
        return [*blocks, Paragraph(f"All {len(runs)} runs completed.")]
    rows = [
        [f"`{r.run_id}`", f"`{r.variant_name}`", fmt.num(r.seed, zeros=False), r.status,
         r.error or "(no reason recorded)", fmt.num(r.steps, 9, zeros=False)]
        for r in bad
    ]
    return [
        *blocks,
        Paragraph(f"{len(bad)} of {len(runs)} runs are not in the statistics above:"),
        Table(["run", "variant", "seed", "status", "reason", "steps"], rows,
              [False, False, True, False, False, True]),
    ]


def _shown(path: Path) -> str:
    """A run directory as the user would type it: relative to where `tzoo report` runs when
    it lies below it (no machine-specific prefix in a committed report), else absolute."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def run_list(runs: Sequence[Run]) -> list[Block]:
    """Appendix: every run with its directory, so any number can be traced back."""
    rows = [
        [f"`{r.run_id}`", f"`{r.variant_name}`", fmt.num(r.seed, zeros=False), r.status,
         fmt.num(r.steps, 9, zeros=False),
         f"`{_shown(r.path)}`"]
        for r in runs
    ]
    return [
        Heading(2, "All runs"),
        Table(["run", "variant", "seed", "status", "steps", "directory"], rows,
              [False, False, True, False, True, False]),
    ]


# ---------------------------------------------------------------------------------------------
# optional inputs: benchmark and sweep

_BENCH_HEADERS = {
    "variant": "variant",
    "train_tokens_per_s": "train tokens/s",
    "peak_mem_mb": "peak mem (MB)",
    "mfu": "MFU",
}


def load_bench(bench: str | Path | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a `tzoo bench` JSON file (or the rows themselves)."""
    if isinstance(bench, list):
        rows = bench
    else:
        try:
            rows = json.loads(Path(bench).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read bench file '{bench}': {exc}") from exc
    if isinstance(rows, dict) and "rows" in rows:  # `tzoo bench` writes {"rows": [...], ...}
        rows = rows["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"bench input '{bench}' is not a list of objects")
    return rows


def _bench_cell(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else f"`{value}`" if key == "variant" else str(value)
    if key == "mfu":
        # MFU is a fraction; show it as a percentage (already-percent values pass through).
        return f"{100 * value:.1f}%" if value <= 1 else f"{value:.1f}%"
    if "tokens" in key:
        return fmt.count(value)
    return fmt.num(float(value), zeros=False)


def bench_section(rows: list[dict[str, Any]]) -> list[Block]:
    """The `tzoo bench` cost table."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    if "variant" in keys:
        keys.remove("variant")
        keys.insert(0, "variant")
    table = Table(
        [_BENCH_HEADERS.get(k, k) for k in keys],
        [[_bench_cell(k, row.get(k)) for k in keys] for row in rows],
        [k != "variant" for k in keys],
    )
    return [
        Heading(2, "Cost benchmark"),
        Paragraph("Throughput and memory measured by `tzoo bench` (separately from training)."),
        table,
    ]


def sweep_section(study: StudyResult, root: Path, plot_dir: Path, *, prefix: str = "",
                  named: bool = False) -> list[Block]:
    """Optimisation history, parameter importances and the best trial of a sweep's study
    (`named`: the heading names the study, for a report with several)."""
    blocks: list[Block] = [
        Heading(2, f"Sweep: {study.name}" if named else "Sweep"),
        Paragraph(f"Optuna study `{study.name}`: {study.n_trials} trials, "
                  f"{study.n_completed} complete."),
    ]
    if not study.n_completed:
        return blocks
    best = study.best
    if best is not None:
        blocks.append(Paragraph(f"Best trial #{best.number}: objective {fmt.num(best.value)}."))
        if best.params:
            blocks.append(Table(["parameter", "best value"],
                                [[f"`{k}`", str(v)] for k, v in best.params.items()]))
    history = plots.sweep_history(study, plot_dir / f"{prefix}sweep_history.png")
    if history is not None:
        blocks += [Heading(3, "Optimisation history"),
                   Image(_rel(history, root), "optimisation history",
                         "Objective of each completed trial and the best so far.")]
    landscape = sweep_landscape(study, plot_dir / f"{prefix}sweep_landscape.png")
    if landscape is not None:
        blocks += [Heading(3, "Where the trials went"),
                   Image(_rel(landscape, root), "trials over the two most important parameters",
                         "Each trial at its two most important parameters, labelled with its "
                         f"objective (darker is better; the worst {1 - COLOUR_QUANTILE:.0%} share "
                         "the end colour); "
                         "crosses: pruned; star: the best trial.")]
    importances = study.importances or {}
    path = plots.sweep_importances(importances, plot_dir / f"{prefix}sweep_importances.png")
    if path is not None:
        blocks += [
            Heading(3, "Parameter importances"),
            Image(_rel(path, root), "parameter importances",
                  f"{IMPORTANCE_METHOD} importances "
                  "(optuna.importance.get_param_importances)."),
            Table(["parameter", "importance"],
                  [[f"`{k}`", f"{v:.3f}"] for k, v in importances.items()], [False, True]),
        ]
    return blocks


# ---------------------------------------------------------------------------------------------
# probes


def _probe_target(group: VariantGroup) -> Run | None:
    """The variant's first completed seed with a checkpoint (else its first completed run)."""
    done = group.completed
    return next((r for r in done if r.checkpoint is not None), done[0] if done else None)


def probes_section(runs: Sequence[Run], root: Path, probe_dir: Path,
                   loader: Loader | None = None) -> list[Block]:
    """Probes on one final checkpoint per variant."""
    blocks: list[Block] = [
        Heading(2, "What the models learned (probes)"),
        Paragraph("Probes on the final checkpoint of one seed per variant (the lowest seed "
                  "with a checkpoint)."),
    ]
    for group in group_by_variant([r for r in runs if r.has_summary]):
        run = _probe_target(group)
        if run is None:
            continue
        blocks.append(Heading(3, f"`{group.name}` (run `{run.run_id}`)"))
        for result in probe_run(run, probe_dir / safe_name(group.name), loader):
            if result.name == "load":
                blocks.append(Paragraph(f"*{result.skipped}*"))
                continue
            blocks.append(Heading(4, result.title))
            if result.skipped:
                blocks.append(Paragraph(f"*{result.skipped}*"))
                continue
            blocks.append(Paragraph(result.caption))
            for figure in result.figures:
                blocks.append(Image(_rel(figure, root), result.title))
            if result.table is not None:
                blocks.append(Table(*result.table))
    return blocks
