"""A report a reader takes in at a glance: it opens with one chart of the primary metric per
variant with the cost beside it, a loss and its monotone transforms share one table, and
every number of a results table has the same number of significant digits."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from fixtures_runs import BASE, ROTARY, fake_load_run, make_experiment, write_run

from tzoo.reports import fmt
from tzoo.reports.build import build_report
from tzoo.reports.overview import primary_of
from tzoo.reports.runs import load_runs
from tzoo.reports.stats import transform_families

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("glance")
    experiment = make_experiment(root / "runs")
    for seed, loss in ((0, 2.0123), (1, 2.0456)):  # a third variant, with test metrics
        write_run(root / "runs", "positions", f"alibi-ok-s{seed}",
                  variant="model.position=alibi", seed=seed, wall_s=7.25 + seed,
                  tokens_per_s=87_000.0, peak_mem_mb=34.7,
                  metrics={"val/loss": loss, "val/ppl": math.exp(loss),
                           "val/bpc": loss / math.log(2) / 1.3, "test/loss": loss + 0.01,
                           "test/ppl": math.exp(loss + 0.01), "test/bpc": 1.5,
                           "test/bleu": 23.0 + seed})
    out = root / "out"
    build_report([experiment], out, command="tzoo report", probe_loader=fake_load_run)
    return (out / "report.md").read_text()


def _sections(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("## ")]


def test_report_opens_with_the_primary_metric_chart(report: str, tmp_path: Path):
    assert _sections(report)[:2] == ["## At a glance", "## Results"]
    glance = report.split("## At a glance", 1)[1].split("## Results", 1)[0]
    (link,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", glance)
    assert link == "plots/overview.png"
    assert "`val/loss` (lower is better) per variant" in glance
    assert "95% confidence interval" in glance and "seeds" in glance and "cost" in glance


def test_overview_png_is_drawn_and_inlined_in_the_html(tmp_path: Path):
    experiment = make_experiment(tmp_path / "runs")
    out = tmp_path / "out"
    build_report([experiment], out, probes=False)
    assert (out / "plots" / "overview.png").read_bytes()[:8] == PNG_SIGNATURE
    html = (out / "index.html").read_text()
    assert html.index("At a glance") < html.index("Results")
    glance = html[html.index("At a glance"):html.index("Results")]
    assert "data:image/png;base64," in glance


def test_primary_metric_comes_from_the_task(tmp_path: Path):
    experiment = make_experiment(tmp_path / "runs")
    runs = load_runs([experiment])
    assert primary_of(runs, ["test/bleu", "val/loss"]) == "val/loss"
    assert primary_of(runs, ["test/bleu"]) == "test/bleu"  # not reported: the first one
    assert primary_of([], []) is None


def test_a_loss_and_its_transforms_share_one_table(report: str):
    results = report.split("## Results", 1)[1].split("\n## ", 1)[0]
    headings = re.findall(r"^### (.*)$", results, flags=re.M)
    assert headings[:3] == ["`val/loss` (lower is better), with `val/ppl`, `val/bpc` and cost",
                            "`test/loss` (lower is better), with `test/ppl`, `test/bpc`",
                            "`test/bleu` (higher is better)"]
    assert not any(h.startswith(("`val/ppl`", "`val/bpc`", "`test/ppl`")) for h in headings)
    table = results.split(headings[0], 1)[1].split("###", 1)[0]
    header = next(line for line in table.splitlines() if line.startswith("| variant"))
    assert "`val/loss` mean ± std" in header and "`val/ppl` mean ± std" in header
    assert transform_families(["val/loss", "val/bpc", "val/ppl", "val/bleu", "val/loss@2x"]) == [
        ["val/loss", "val/ppl", "val/bpc"], ["val/bleu"], ["val/loss@2x"]]


def _significant(number: str) -> int:
    """Significant digits of a printed number: '0.008916' -> 4, '120.0' -> 4, '1234' -> 4."""
    digits = number.replace(".", "").lstrip("0")
    return len(digits)


NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]\d+)?")


def test_every_number_of_a_results_table_has_the_same_significant_digits(report: str):
    results = report.split("## Results", 1)[1].split("\n## ", 1)[0]
    tables = [block for block in re.split(r"\n\s*\n", results) if block.startswith("| variant")]
    assert len(tables) >= 4
    for table in tables:
        lines = table.splitlines()
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            for column, cell in zip(header, cells, strict=True):
                if column in ("variant", "seeds") or cell in (fmt.DASH, "n/a"):
                    continue
                wanted = fmt.P_DIGITS if column == "p" else fmt.TABLE_DIGITS
                for number in NUMBER.findall(cell.replace("**", "")):
                    mantissa = number.split("e")[0]
                    if float(mantissa) == 0:  # a zero spread: "0.000"
                        continue
                    assert _significant(mantissa) == wanted, (column, cell)
    # the cost columns too: trailing zeros kept, one unit of time
    assert "| 120.0k | 5.000k | 300.0 | 1.583 min |" in report
    assert "| 120.0k | 87.00k | 34.70 |" in report


@pytest.mark.parametrize(("value", "digits", "text"), [
    (34.7, 4, "34.70"), (1234.0, 4, "1234"), (0.008916, 4, "0.008916"), (2.0, 3, "2.00")])
def test_sig_keeps_trailing_zeros(value, digits, text):
    assert fmt.sig(value, digits) == text


def test_report_names_base_and_rotary(report: str):
    assert f"`{BASE}` (base)" in report and f"`{ROTARY}`" in report
