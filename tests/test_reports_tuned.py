"""The shared-or-tuned section of a report (`tzoo report --shared KEY=VALUE`), read from
hand-written run directories of a variant x learning-rate grid with known numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_runs import write_run

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.reports.build import build_report
from tzoo.reports.runs import load_runs
from tzoo.reports.tuned import families

# val/loss per (ffn, lr): two seeds each. ReLU keeps improving up to the highest rate tried
# (its best is at the edge); GELU is best at the shared 0.002. At the shared rate GELU wins,
# tuned ReLU wins: the conclusion flips.
GRID = {
    ("relu", "0.001"): (2.50, 2.52), ("relu", "0.002"): (2.30, 2.32),
    ("relu", "0.004"): (2.20, 2.22),
    ("gelu", "0.001"): (2.40, 2.42), ("gelu", "0.002"): (2.25, 2.27),
    ("gelu", "0.004"): (2.28, 2.30),
}


def _grid(root: Path, grid: dict[tuple[str, str], tuple[float, float]]) -> Path:
    for (ffn, lr), losses in grid.items():
        for seed, loss in enumerate(losses):
            write_run(root, "lr-ffn", f"{ffn}-{lr}-s{seed}",
                      variant=f"model.ffn={ffn}, train.lr={lr}", seed=seed,
                      metrics={"val/loss": loss})
    return root / "lr-ffn"


def _section(markdown: str) -> str:
    start = markdown.index("## Shared or tuned")
    return markdown[start:markdown.index("\n## ", start + 1)]


def test_each_variant_at_the_shared_and_at_its_best_setting(tmp_path: Path) -> None:
    runs = load_runs([_grid(tmp_path / "runs", GRID)])
    relu, gelu = sorted(families(runs, {"train.lr": 0.002}, "val/loss"),
                        key=lambda f: f.name != "model.ffn=relu")
    assert relu.shared is not None and relu.best is not None
    assert relu.shared.summary.mean == pytest.approx(2.31)
    assert relu.best.setting == "train.lr=0.004" and relu.at_edge
    assert gelu.best is gelu.shared and not gelu.at_edge
    assert [c.setting for c in gelu.cells] == ["train.lr=0.001", "train.lr=0.002",
                                              "train.lr=0.004"]


def test_section_ranks_both_ways_and_names_the_flipped_conclusion(tmp_path: Path) -> None:
    experiment = _grid(tmp_path / "runs", GRID)
    out = tmp_path / "report"
    build_report([experiment], out, shared={"train.lr": 0.002}, probes=False)
    section = _section((out / "report.md").read_text())
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in section.splitlines() if line.startswith("| `model.ffn=")}
    # at the shared setting | rank | best setting | tuned | rank | tuning gain | note
    assert rows["`model.ffn=gelu`"][1] == "1" and rows["`model.ffn=relu`"][1] == "2"
    assert rows["`model.ffn=relu`"][2] == "`train.lr=0.004`"
    assert rows["`model.ffn=relu`"][4] == "1" and rows["`model.ffn=gelu`"][4] == "2"
    assert rows["`model.ffn=relu`"][5] == "+0.1"
    assert rows["`model.ffn=relu`"][6] == "best at the edge of the values tried"
    assert rows["`model.ffn=gelu`"][6] == ""
    assert ("Order at the shared setting, best first: `model.ffn=gelu`, `model.ffn=relu`."
            in section)
    assert ("Order with each variant tuned, best first: `model.ffn=relu`, `model.ffn=gelu`."
            in section)
    assert rows["`model.ffn=gelu`"][5] == "0"
    assert ("`model.ffn=gelu` beats `model.ffn=relu` at the shared setting, −0.05"
            in section.replace("-0.05", "−0.05"))
    assert "tuned, `model.ffn=relu` beats `model.ffn=gelu`" in section
    assert "may lie outside them" in section
    figure = out / "plots" / "tuning_curves.png"
    assert figure.read_bytes().startswith(b"\x89PNG") and "plots/tuning_curves.png" in section


def test_no_flip_is_said_as_such(tmp_path: Path) -> None:
    grid = {**GRID, ("relu", "0.004"): (2.40, 2.42)}  # ReLU now best at the shared rate too
    out = tmp_path / "report"
    build_report([_grid(tmp_path / "runs", grid)], out, shared={"train.lr": 0.002},
                 probes=False)
    section = _section((out / "report.md").read_text())
    assert "No pair of variants changes order when each is tuned." in section
    assert "may lie outside them" not in section


@pytest.mark.parametrize(("flag", "expected"), [
    ("train.lrr=0.002", "did you mean 'train.lr'"),
    ("train.lr=0.003", "0.001, 0.002, 0.004"),
])
def test_bad_shared_setting_is_refused_before_writing(tmp_path: Path, flag: str,
                                                      expected: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    experiment = _grid(tmp_path / "runs", GRID)
    out = tmp_path / "report"
    with pytest.raises(ConfigError) as error:
        build_report([experiment], out, shared=dict([flag.split("=")]), probes=False)
    assert error.value.key == "--shared"
    code = main(["report", str(experiment), "--out", str(out), "--shared", flag,
                 "--no-probes"])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "--shared" in err and "Traceback" not in err
    assert not out.exists()


def test_a_setting_still_training_is_left_out(tmp_path: Path) -> None:
    """Runs without a final metric yet (a sweep in progress) make no cell: GELU's shared runs
    still train, so it has no shared figure and takes part in no comparison."""
    experiment = _grid(tmp_path / "runs", GRID)
    for seed in (0, 1):
        write_run(tmp_path / "runs", "lr-ffn", f"gelu-0.002-running-s{seed}",
                  variant="model.ffn=gelu, train.lr=0.002", seed=seed + 2, status="running",
                  metrics={})
    for seed in (0, 1):
        (experiment / f"gelu-0.002-s{seed}").rename(tmp_path / f"moved-{seed}")
    relu, gelu = sorted(families(load_runs([experiment]), {"train.lr": 0.002}, "val/loss"),
                        key=lambda f: f.name != "model.ffn=relu")
    assert gelu.shared is None and gelu.best is not None and relu.shared is not None
    out = tmp_path / "report"
    build_report([experiment], out, shared={"train.lr": 0.002}, probes=False)
    assert "No pair of variants changes order" in _section((out / "report.md").read_text())
