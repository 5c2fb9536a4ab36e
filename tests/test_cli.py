"""The `tzoo` command end to end: the quickstart experiment (scaled down) and bad data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tzoo.cli import main

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
SMALL = [
    "train.steps=12", "train.warmup=2", "train.val_every=6", "train.progress=false",
    "train.threads=1", "seeds=[0]", "model.d_model=16", "model.layers=1", "model.heads=2",
    "data.context=32", "data.batch_size=8", "eval.batches=2", "eval.test_batches=2",
]


@pytest.fixture(autouse=True)
def _restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, capsys):
    assert QUICKSTART.is_file()
    overrides = [arg for item in SMALL for arg in ("--set", item)]
    out = tmp_path / "runs"
    assert main(["validate", str(QUICKSTART), *overrides]) == 0
    planned = capsys.readouterr().out
    assert main(["run", "quickstart", *overrides, "--out", str(out)]) == 0  # by name
    printed = capsys.readouterr().out
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    assert len(summaries) >= 2 and f"{len(summaries)} runs" in planned
    assert f"{len(summaries)}/{len(summaries)} runs completed" in printed
    multipliers = [m for m in (2, 4) if f"val/loss@{m}x" in summaries[0]["metrics"]]
    assert multipliers, "the quickstart evaluates beyond the training length"
    for summary in summaries:
        assert summary["status"] == "completed" and summary["steps"] == 12
        metrics = summary["metrics"]
        assert metrics["val/loss"] > 0 and metrics["test/loss"] > 0
        run_dir = out / summary["run_id"]
        for name in ("config.yaml", "metrics.csv", "tokenizer.json", "checkpoints/final.pt"):
            assert (run_dir / name).is_file(), name
        position = summary["variant"].get("model.position", "learned")
        for m in multipliers:
            if position == "learned":
                assert metrics[f"val/loss@{m}x"] is None
                assert f"val/loss@{m}x" in summary["not_applicable"]
            else:
                assert metrics[f"val/loss@{m}x"] > 0
    # a trained run generates text
    learned = next(s for s in summaries if not s["variant"])
    assert main(["generate", str(out / learned["run_id"]), "--prompt", "The ",
                 "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.startswith("The ")


def test_missing_data_file_exits_2_before_training(tiny, write_yaml, tmp_path, capsys):
    tiny["data"] = {**tiny["data"], "corpus": "file:/nonexistent.txt", "options": {}}
    path = write_yaml("nodata.yaml", tiny)
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err and "\n" not in err
    assert "nodata.yaml" in err and "data.corpus" in err and "/nonexistent.txt" in err
    assert not out.exists() or not any(out.iterdir())  # nothing trained, no run directory
    assert main(["validate", str(path), "--data"]) == 2
    assert "/nonexistent.txt" in capsys.readouterr().err


def test_list_and_unknown_family(capsys):
    assert main(["list", "positions.*"]) == 0
    assert "positions.rotary" in capsys.readouterr().out
    assert main(["list", "positons.*"]) == 2
    assert "did you mean 'positions'" in capsys.readouterr().err


def test_bench_flags_and_defaults(capsys):
    """`tzoo bench` takes its flags from recipes/bench/cli.py; names and defaults are the ones
    the docs and reports/bench print."""
    from tzoo.cli import build_parser

    defaults = {"repeats": 5, "json": None, "markdown": None, "scaling": False,
                "generation": False, "overhead": False, "compile": False, "no_table": False,
                "threads": None, "steps": 3, "overhead_steps": 100,
                "contexts": "128,256,512,1024", "depths": "1,2,4,8", "gen_tokens": 512,
                "chat_turns": 8, "peak_sizes": "1024,1536,2048", "plots": "reports/bench",
                "set": [], "out": None}
    args = vars(build_parser().parse_args(["bench", "exp.yaml"]))
    assert {key: args[key] for key in defaults} == defaults
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = capsys.readouterr().out
    for key in defaults:
        assert "--" + key.replace("_", "-") in help_text


def test_shards_split_the_runs_without_overlap(tiny, write_yaml, tmp_path, capsys):
    tiny["seeds"] = [0, 1, 2]
    tiny["train"]["steps"] = 4
    path = str(write_yaml("shard.yaml", tiny))
    out = tmp_path / "runs"
    assert main(["run", path, "--out", str(out), "--shard", "1/2"]) == 0
    first = {p.name for p in out.iterdir()}
    assert main(["run", path, "--out", str(out), "--shard", "2/2"]) == 0
    second = {p.name for p in out.iterdir()} - first
    assert len(first) == 2 and len(second) == 1
    assert main(["run", path, "--out", str(out), "--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err
