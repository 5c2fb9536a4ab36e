"""The `tzoo report` and `tzoo compare` commands, as functions the main CLI calls.

Both return an exit status. Bad input (a path with no run directories) raises
`ConfigError`, which the main CLI prints without a traceback.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tzoo.components.errors import ConfigError
from tzoo.recipes.experiment import parse_override
from tzoo.sweeps.results import RESULT_FILES

from .build import build_report
from .compare import compare
from .probe_runner import safe_name
from .runs import load_runs

REPORTS_ROOT = Path("reports")


def _invocation(fallback: list[str]) -> str:
    """The command line as typed when run as `tzoo ...`; else the equivalent command."""
    if sys.argv and Path(sys.argv[0]).name == "tzoo":
        return shlex.join(["tzoo", *sys.argv[1:]])
    return shlex.join(fallback)


def default_out(paths: list[str]) -> Path:
    """reports/<experiment>/ (experiments joined with '+' when several are reported together)."""
    experiments = sorted({run.experiment for run in load_runs(paths)})
    return REPORTS_ROOT / safe_name("+".join(experiments))


def _found_beside(paths: list[str], *names: str) -> Path | None:
    """The first of `names` (bench.json; study.journal, study.json) in the one experiment
    folder given, if there."""
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    if len(folders) == 1:
        return next((folders[0] / n for n in names if (folders[0] / n).is_file()), None)
    return None


def _repeated(flag: str, items: list[str] | None) -> list[str]:
    """A repeatable flag as typed: --flag A --flag B."""
    return [arg for item in items or () for arg in (flag, item)]


def report_command(paths: list[str], out: str | None, title: str | None,
                   bench: str | None = None, study: str | None = None,
                   reference: list[str] | None = None, *, probes: bool = True,
                   shared: list[str] | None = None) -> int:
    """`tzoo report PATH... [--out DIR] [--title T] [--bench FILE] [--study JOURNAL[:NAME]]
    [--reference AXIS=VALUE ...] [--shared KEY=VALUE ...] [--no-probes]`: build the report,
    print where it is. A `bench.json` written by `tzoo bench` and a sweep's results beside the
    runs (its `study.journal`, else its `study.json`) are picked up without being named."""
    if not paths:
        raise ConfigError("tzoo report needs at least one run or experiment directory")
    out_dir = Path(out) if out else default_out(paths)
    argv = ["tzoo", "report", *paths] + (["--out", out] if out else []) + (
        ["--title", title] if title else []) + (["--bench", bench] if bench else []) + (
        ["--study", study] if study else []) + _repeated("--reference", reference) + (
        _repeated("--shared", shared)) + ([] if probes else ["--no-probes"])
    reference_values = dict(parse_override(item) for item in reference or ()) or None
    shared_values = dict(parse_override(item) for item in shared or ()) or None
    bench_input = bench or _found_beside(paths, "bench.json")
    study_input: object = None
    if study:
        path, _, name = study.partition(":")
        study_input = (path, name) if name else path
    else:
        # every study of the sweep these runs belong to: its storage, else its study.json
        study_input = _found_beside(paths, *RESULT_FILES)
    report = build_report(paths, out_dir, title=title, command=_invocation(argv),
                          bench=bench_input, study=study_input, reference=reference_values,
                          probes=probes, shared=shared_values)
    print(f"report: {report}")
    print(f"html:   {report.parent / 'index.html'}")
    return 0


def compare_command(a: str, b: str, markdown_out: str | None) -> int:
    """`tzoo compare A B [--markdown FILE]`: print the comparison, optionally save markdown."""
    text, markdown = compare(a, b)
    print(text, end="")
    if markdown_out:
        target = Path(markdown_out)
        if target.parent and not target.parent.exists():
            raise ConfigError(f"cannot write '{target}': directory '{target.parent}' is missing")
        target.write_text(markdown, encoding="utf-8")
        print(f"markdown: {target}")
    return 0
