"""`build_report`: run directories in, report.md + index.html + PNGs out.

Layout of the output directory::

    report.md      GitHub-flavoured markdown, figures linked as relative PNG paths
    index.html     the same content, self-contained (figures inlined as data URIs)
    plots/*.png    comparison figures
    probes/<variant>/*.png
    interventions/<variant>/*.png
"""

from __future__ import annotations

import datetime as _dt
import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tzoo.components.errors import ConfigError

from . import intervention_section, judged_by, sections, tuned
from .document import Block, to_markdown
from .html_page import to_html
from .overview import overview
from .probe_runner import Loader
from .runs import Run, group_by_variant, load_runs
from .stats import metric_names
from .study import StudyInput, resolve_studies

REPORT_MD = "report.md"
INDEX_HTML = "index.html"


def default_title(runs: Iterable[Run]) -> str:
    experiments = sorted({r.experiment for r in runs})
    return f"Ablation report: {', '.join(experiments)}" if experiments else "Ablation report"


def judged_metric(runs: list[Run]) -> str:
    """The metric the runs are judged by, among those they recorded (val/loss for an LM)."""
    present = metric_names([r for r in runs if r.completed])
    leading = judged_by.leading(runs, present)
    if not leading:
        raise ConfigError("no completed run recorded the metric these runs are judged by",
                          key="--shared")
    return leading[0]


def assemble(runs: list[Run], out_dir: Path, *, title: str, command: str,
             study: StudyInput | None = None, bench: Any = None, probes: bool = True,
             probe_loader: Loader | None = None,
             reference: dict[str, Any] | None = None,
             shared: dict[str, Any] | None = None) -> list[Block]:
    """All sections as document blocks (figures are written under `out_dir` on the way)."""
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    plot_dir = out_dir / "plots"
    blocks = sections.header(runs, title, command, generated)
    blocks += overview(runs, out_dir, plot_dir)
    blocks += sections.all_results(runs, out_dir, plot_dir, reference)
    if shared:
        blocks += tuned.section(runs, shared, judged_metric(runs), plot_dir, out_dir)
    blocks += sections.not_completed(runs)
    if bench is not None:
        blocks += sections.bench_section(sections.load_bench(bench))
    if study is not None:
        studies = resolve_studies(study)
        for index, one in enumerate(studies, start=1):
            prefix = f"study{index}_" if len(studies) > 1 else ""
            blocks += sections.sweep_section(one, out_dir, plot_dir, prefix=prefix,
                                             named=len(studies) > 1)
    if probes:
        blocks += sections.probes_section(runs, out_dir, out_dir / "probes", probe_loader)
        blocks += intervention_section.section(runs, out_dir, out_dir / "interventions",
                                               probe_loader)
    blocks += sections.run_list(runs)
    return blocks


def build_report(run_dirs: Iterable[str | Path], out_dir: str | Path, *,
                 title: str | None = None, command: str | None = None,
                 study: StudyInput | None = None, bench: Any = None,
                 probes: bool = True, probe_loader: Loader | None = None,
                 reference: dict[str, Any] | None = None,
                 shared: dict[str, Any] | None = None) -> Path:
    """Write report.md, index.html and figures for the runs under `run_dirs`.

    `run_dirs` may name run directories, experiment directories or globs. `command` is shown
    verbatim in the header (the CLI passes its own command line; default: the equivalent
    `tzoo report` call). `study`: a sweep's results (see study.py): an optuna.Study, a runs
    folder, journal, study.json or database URL, or (one of those, study name).
    `bench`: a `tzoo bench` JSON file (or its rows). `probes=False` skips loading checkpoints.
    `reference`: {axis: value} to compare each variant with (default: the experiment's
    `ablate.reference`, else the base). `shared`: {key: value} of a setting the variants were
    also run at their own best values of (a tuned learning rate): adds the shared-or-tuned
    section (tuned.py).
    Returns the path of report.md.
    """
    run_dirs = [str(p) for p in run_dirs]
    out = Path(out_dir)
    runs = load_runs(run_dirs)
    if reference:  # a wrong axis or value is refused before anything is written
        group_by_variant([r for r in runs if r.has_summary], reference)
    if shared:
        tuned.families(runs, shared, judged_metric(runs))
    out.mkdir(parents=True, exist_ok=True)
    # The figure folders are the builder's own: clear them so that no figure of an earlier
    # build (a variant since renamed, a data set since split) outlives it. Anything else in
    # the folder, such as a written conclusion, is left alone.
    for generated in ("plots", "probes", "interventions"):
        shutil.rmtree(out / generated, ignore_errors=True)
    title = title or default_title(runs)
    if command is None:
        command = shlex.join(["tzoo", "report", *run_dirs, "--out", str(out_dir)])
    blocks = assemble(runs, out, title=title, command=command, study=study, bench=bench,
                      probes=probes, probe_loader=probe_loader, reference=reference,
                      shared=shared)
    report = out / REPORT_MD
    report.write_text(to_markdown(blocks), encoding="utf-8")
    (out / INDEX_HTML).write_text(to_html(blocks, out, title), encoding="utf-8")
    return report
