"""`tzoo bench` at tiny sizes: every mode runs and writes well-formed results. No timing is
asserted (the machine is shared and noisy); only shapes, keys and finite positive numbers."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from tzoo.cli import build_parser
from tzoo.recipes.bench.cli import bench_command
from tzoo.recipes.bench.generation import bench_chat, bench_decode
from tzoo.recipes.bench.nanogpt_reference import main as nanogpt_reference
from tzoo.recipes.bench.overhead import bench_overhead
from tzoo.recipes.bench.plots import generation_plots
from tzoo.recipes.bench.scaling import bench_scaling, kv_cache_bytes
from tzoo.recipes.bench.zoo_vs_gpt import POSITIONS, reference_model, zoo_model
from tzoo.recipes.experiment import experiment_from_dict, load_experiment

TINY = """\
experiment: tiny-bench
data: {corpus: "builtin:pydoc", tokenizer: char, context: 16, batch_size: 2}
model: {d_model: 16, layers: 1, heads: 2}
train: {steps: 10, warmup: 1, log_every: 2, progress: false, threads: 1}
eval: {batches: 1, context_multipliers: [1]}
ablate: {model.position: [learned, rotary]}
"""


@pytest.fixture(scope="module")
def experiment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def config(experiment_file: Path) -> dict:
    return load_experiment(experiment_file).plan()[0].config


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _args(experiment_file: Path, tmp_path: Path) -> argparse.Namespace:
    """The options `tzoo bench` parses (its own defaults for the rest), at the tiny size."""
    return build_parser().parse_args([
        "bench", str(experiment_file), "--repeats", "1", "--json", str(tmp_path / "bench.json"),
        "--threads", "1", "--steps", "1", "--overhead-steps", "2", "--contexts", "8,16",
        "--depths", "1,2", "--gen-tokens", "8", "--chat-turns", "2", "--peak-sizes", "64",
        "--plots", str(tmp_path / "plots")])


def test_variants_table_json_and_markdown(experiment_file: Path, tmp_path: Path) -> None:
    assert bench_command(_args(experiment_file, tmp_path)) == 0
    doc = json.loads((tmp_path / "bench.json").read_text())
    rows = doc["rows"]
    assert [r["variant"] for r in rows] == ["model.position=learned", "model.position=rotary"]
    for row in rows:
        for key in ("params", "flops_per_token", "train_tokens_per_s", "prefill_tokens_per_s",
                    "decode_tokens_per_s", "decode_ms_per_step", "peak_mem_mb", "mfu"):
            assert _positive(row[key]), (key, row[key])
        detail = doc["details"][row["variant"]]["train_tokens_per_s"]
        assert detail["min"] <= detail["median"] <= detail["max"]
    assert _positive(doc["machine"]["matmul_peak"]["gflops"])
    markdown = (tmp_path / "bench.md").read_text()
    assert "| variant |" in markdown and "model.position=rotary" in markdown
    assert (tmp_path / "plots" / "README.md").is_file()


def test_generation_cost(config: dict, tmp_path: Path) -> None:
    decode = bench_decode(config, tokens=16, repeats=1, echo=lambda _: None)
    assert set(decode["per_step_ms"]) == {"cached", "uncached"}
    assert len(decode["per_step_ms"]["cached"]) == 16
    assert _positive(decode["speedup_total"]["median"])
    assert all(_positive(s["median"]) for s in decode["latency_ms"]["uncached"].values())
    chat = bench_chat(config, turns=2, user=4, reply=3, repeats=1, echo=lambda _: None)
    assert len(chat["per_turn_ms"]) == 3
    for turns in chat["per_turn_ms"].values():
        assert len(turns) == 2 and all(_positive(t["median"]) for t in turns)
    paths = generation_plots(decode, chat, tmp_path)
    assert [p.name for p in paths] == ["decode_latency.png", "chat_turns.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_overhead(config: dict) -> None:
    result = bench_overhead(config, steps=4, repeats=2, echo=lambda _: None)
    for key in ("runner_step_ms", "bare_step_ms", "runner_over_bare", "data_ms"):
        assert _positive(result[key]["median"]), key
    assert 0 <= result["data_pct_of_step"]["median"] < 100
    assert result["pairs"] == 2 * 4  # every timed runner step has its bare twin
    assert _positive(result["runner_over_bare_per_step"]["median"])
    assert result["compile"] == {"requested": False}


def test_scaling_and_kv_cache() -> None:
    raw = yaml.safe_load(TINY)
    raw.pop("ablate")  # one variant is enough to exercise the sweep
    experiment = experiment_from_dict(raw)
    result = bench_scaling(experiment, contexts=(8, 16), depths=(1,), repeats=1, steps=1,
                           warmup=0, echo=lambda _: None)
    for points in result["context"].values():
        assert set(points) == {"8", "16"}
        assert all(_positive(p["us_per_token"]["median"]) for p in points.values())
    rows = kv_cache_bytes(experiment.plan()[0].config, length=12)
    assert [r["kv_heads"] for r in rows] == [2, 1]  # mha, mqa (2 heads: no distinct gqa)
    for row in rows:
        assert row["measured_bytes_per_token"] == row["analytic_bytes_per_token"]


# --- the standalone yardsticks (python -m tzoo.recipes.bench.<name>) ----------------------------


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("position", POSITIONS)
def test_monolithic_gpt_computes_the_zoo_model(position: str) -> None:
    torch.manual_seed(0)
    zoo, reference = zoo_model(position), reference_model(position)
    assert _parameters(zoo) == _parameters(reference)
    reference.load_zoo(zoo)
    tokens = torch.randint(0, 65, (1, 12))  # shorter than the context: cheap, same math
    with torch.no_grad():
        assert torch.allclose(zoo(tokens), reference(tokens), atol=1e-4)


def test_nanogpt_reference_trains_and_reports(tmp_path: Path) -> None:
    corpus = tmp_path / "input.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 60)
    out = tmp_path / "ref.json"
    assert nanogpt_reference(["--data", str(corpus), "--seeds", "0", "--steps", "3",
                              "--context", "8", "--batch", "2", "--d-model", "16", "--layers",
                              "1", "--heads", "2", "--draws", "2", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert set(summary) == {"nanogpt_20", "suite_50", "full"}
    assert all(_positive(s["mean"]) for s in summary.values())
