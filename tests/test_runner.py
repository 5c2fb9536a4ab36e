"""The ablation runner end to end on tiny runs: resume after SIGKILL, skipping completed runs,
divergence, determinism, and extrapolation marked not applicable."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from tzoo.cli import main
from tzoo.recipes.measure import PeakMemory
from tzoo.recipes.resident import reset_high_water_mark


@pytest.fixture(autouse=True)
def _restore_threads():
    """`train.threads` sets torch's thread count for the process; put it back afterwards."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def _summaries(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))}


def _metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------ resume


def test_sigkill_mid_training_then_resume_matches_uninterrupted(tiny, write_yaml, tmp_path):
    """Tolerance: exact (0.0). Batches, masks and the RNG are functions of (seed, step) or are
    restored from the checkpoint, so a resumed CPU run computes bit for bit the same."""
    tiny["train"].update(steps=80, val_every=30, checkpoint_every=10, threads=1)
    path = write_yaml("resume.yaml", tiny)
    killed_out = tmp_path / "killed" / "runs"  # separate parents: no reuse between the two
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tzoo.cli", "run", str(path), "--out", str(killed_out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while not list(killed_out.glob("*/checkpoints/last.ckpt")):
            assert process.poll() is None, "the run ended before it checkpointed"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    (run_dir,) = killed_out.iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    assert not (run_dir / "checkpoints" / "final.pt").exists()  # really killed mid-training

    assert main(["run", str(path), "--out", str(killed_out)]) == 0
    resumed = _summaries(killed_out)[run_dir.name]
    assert resumed["status"] == "completed"
    assert 10 <= resumed["resumed_from_step"] < 80

    fresh_out = tmp_path / "fresh" / "runs"
    assert main(["run", str(path), "--out", str(fresh_out)]) == 0
    fresh = _summaries(fresh_out)[run_dir.name]
    assert fresh["resumed_from_step"] == 0
    assert resumed["metrics"] == fresh["metrics"]  # exact

    # the training curve: every step once, and the same losses as the uninterrupted run. A
    # step's row is written before the step's checkpoint, so a kill loses no row.
    rows = _metric_rows(run_dir)
    train_steps = [int(r["step"]) for r in rows if r["train/loss"]]
    assert sorted(train_steps) == list(range(80))
    val_steps = Counter(int(r["step"]) for r in rows if r["val/loss"])
    assert all(count <= 2 for count in val_steps.values())  # periodic + the final validate
    fresh_loss = {int(r["step"]): r["train/loss"] for r in _metric_rows(fresh_out / run_dir.name)
                  if r["train/loss"]}
    assert {int(r["step"]): r["train/loss"] for r in rows if r["train/loss"]} == {
        step: loss for step, loss in fresh_loss.items() if step in set(train_steps)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stop_signal_checkpoints_then_resume_matches_uninterrupted(signum, tiny, write_yaml,
                                                                   tmp_path):
    """SIGTERM (a scheduler's kill) or one Ctrl-C stops the command with 130 at the next step
    boundary, writes interrupted.ckpt and records the run as interrupted; the same command
    resumes from that exact step and computes bit for bit what an uninterrupted run does."""
    tiny["train"].update(steps=300, val_every=100, checkpoint_every=100, threads=1)
    path = write_yaml("term.yaml", tiny)
    out = tmp_path / "term" / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "tzoo.cli", "run", str(path), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        def steps_logged() -> int:
            return sum(len(p.read_text().splitlines()) - 1 for p in out.glob("*/metrics.csv"))

        while steps_logged() < 5:  # a few training steps done (one row per step)
            assert process.poll() is None, "the run ended before it trained"
            assert time.monotonic() < deadline, "no training within 120 s"
            time.sleep(0.01)
        process.send_signal(signum)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    stopped_at = torch.load(run_dir / "checkpoints" / "interrupted.ckpt", map_location="cpu",
                            weights_only=True)["global_step"]
    assert 0 < stopped_at < 300
    assert not list(run_dir.glob("checkpoints/.*.tmp"))  # written under a temporary name

    assert main(["run", str(path), "--out", str(out)]) == 0
    resumed = _summaries(out)[run_dir.name]
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == stopped_at
    fresh_out = tmp_path / "fresh" / "runs"
    assert main(["run", str(path), "--out", str(fresh_out)]) == 0
    assert resumed["metrics"] == _summaries(fresh_out)[run_dir.name]["metrics"]


def test_training_rows_carry_the_step_they_describe(tiny, write_yaml, tmp_path):
    """Row `step` s holds step s's loss, learning rate and gradient norms (the learning rate
    of the warm-up's first steps pins it: lr·(s+1)/(warmup+1))."""
    tiny["train"].update(steps=20, log_every=5, warmup=10, lr=1e-3, schedule="constant")
    out = tmp_path / "runs"
    assert main(["run", str(write_yaml("rows.yaml", tiny)), "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    rows = [r for r in _metric_rows(run_dir) if r["train/loss"]]
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15]
    for row in rows:
        step = int(row["step"])
        expected = 1e-3 * (step + 1) / 11 if step < 10 else 1e-3
        assert float(row["lr"]) == pytest.approx(expected)
        assert float(row["grad_norm/layer_0"]) > 0


def test_resume_after_training_finished_evaluates_the_trained_model(tiny, write_yaml, tmp_path):
    """Stopped during the final evaluation (training done, last.ckpt at the last step, no
    summary yet): the rerun skips training and must evaluate the trained weights, not a
    freshly built model."""
    tiny["train"].update(steps=20, checkpoint_every=10)
    path = write_yaml("after.yaml", tiny)
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    finished = json.loads((run_dir / "summary.json").read_text())["metrics"]
    (run_dir / "summary.json").unlink()
    assert main(["run", str(path), "--out", str(out)]) == 0
    again = json.loads((run_dir / "summary.json").read_text())
    assert again["resumed_from_step"] == 20
    assert again["metrics"] == finished


def test_completed_experiment_rerun_trains_nothing(tiny, write_yaml, tmp_path, capsys):
    tiny["ablate"] = {"model.position": ["alibi"]}
    path = write_yaml("done.yaml", tiny)
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.glob("*/*") if p.is_file()}
    assert len(_summaries(out)) == 2
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["run", str(path), "--out", str(out)]) == 0
    elapsed = time.perf_counter() - started
    printed = capsys.readouterr().out
    assert printed.count("        completed: already done, skipped") == 2
    assert elapsed < 5, f"a rerun of completed runs took {elapsed:.1f}s"
    after = {p: p.read_bytes() for p in out.glob("*/*") if p.is_file()}
    assert after == before  # summary.json, metrics.csv, config.yaml untouched


# ------------------------------------------------------------------------ divergence


def test_diverging_variant_is_recorded_and_others_complete(tiny, write_yaml, tmp_path, capsys):
    tiny["train"]["grad_clip"] = None
    tiny["ablate"] = {"train.lr": [1e4], "model.position": ["alibi"]}
    out = tmp_path / "runs"
    assert main(["run", str(write_yaml("nan.yaml", tiny)), "--out", str(out)]) == 1
    assert "diverged" in capsys.readouterr().out
    by_variant = {s["variant_name"]: s for s in _summaries(out).values()}
    assert set(by_variant) == {"train.lr=0.001, model.position=rotary", "train.lr=10000.0",
                               "model.position=alibi"}
    diverged = by_variant.pop("train.lr=10000.0")
    assert diverged["status"] == "diverged"
    assert isinstance(diverged["diverged_at_step"], int) and diverged["diverged_at_step"] < 20
    assert f"at step {diverged['diverged_at_step']}" in diverged["error"]
    for summary in by_variant.values():
        assert summary["status"] == "completed" and summary["metrics"]["val/loss"] > 0
    # a diverged run is final: rerunning does not train it again
    assert main(["run", str(write_yaml("nan.yaml", tiny)), "--out", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("        ") and "skipped" in line for line in printed) == 3


# ------------------------------------------------------------------------ determinism


def test_same_config_and_seed_give_identical_metrics(tiny, write_yaml, tmp_path):
    tiny["seeds"] = [0, 1]
    path = write_yaml("twice.yaml", tiny)
    one, two = tmp_path / "one" / "runs", tmp_path / "two" / "runs"
    assert main(["run", str(path), "--out", str(one)]) == 0
    assert main(["run", str(path), "--out", str(two)]) == 0
    first, second = _summaries(one), _summaries(two)
    assert set(first) == set(second) and len(first) == 2
    for run_id, summary in first.items():
        assert "reused_from" not in second[run_id]
        assert summary["metrics"] == second[run_id]["metrics"]
        assert summary["data_fingerprint"] == second[run_id]["data_fingerprint"]
    seed0, seed1 = (s["metrics"]["val/loss"] for s in first.values())
    assert seed0 != seed1


# ------------------------------------------------------------------------ extrapolation


def test_extrapolation_learned_positions_not_applicable(tiny, write_yaml, tmp_path):
    tiny["eval"]["context_multipliers"] = [1, 2]
    tiny["eval"]["test"] = False
    tiny["ablate"] = {"model.position": ["learned"]}
    out = tmp_path / "runs"
    assert main(["run", str(write_yaml("extrapolate.yaml", tiny)), "--out", str(out)]) == 0
    by_position = {s["variant_name"]: s for s in _summaries(out).values()}
    learned = by_position["model.position=learned"]
    assert learned["metrics"]["val/loss@2x"] is None
    assert "val/loss@2x" in learned["not_applicable"]
    assert "cannot represent" in learned["not_applicable"]["val/loss@2x"]
    assert isinstance(learned["metrics"]["val/loss@1x"], float)
    rotary = by_position["model.position=rotary"]
    assert isinstance(rotary["metrics"]["val/loss@2x"], float)
    assert rotary["not_applicable"] == {}


# ------------------------------------------------------------------------ cost measurement


@pytest.mark.skipif(not reset_high_water_mark(),
                    reason="cannot reset the kernel high-water mark (/proc/self/clear_refs)")
def test_peak_memory_measures_each_run_from_a_clean_start():
    """A run that allocates and frees 64 MB reads ~64 MB, and so does the next one in the same
    process: memory the first run freed is handed back to the kernel before the second starts,
    not silently reused (which made later runs of a multi-run process read low)."""
    readings = []
    for _ in range(2):
        with PeakMemory() as memory:
            block = torch.ones(16 * 2**20)  # 64 MB, written: resident
            del block
        readings.append(memory.megabytes)
    assert all(56 < mb < 200 for mb in readings), readings


# ------------------------------------------------------------------------ repeat loss


def test_seen_in_document_resets_at_end_of_document():
    from tzoo.recipes.language_modeling import seen_in_document

    a, b, c, eos = 5, 6, 7, 2
    tokens = torch.tensor([[a, b, c, eos, a, b, a, c]])
    assert seen_in_document(tokens, eos).tolist() == [
        [False, False, False, False, False, False, True, False]]


def test_repeat_loss_splits_the_validation_loss(tiny, write_yaml, tmp_path):
    tiny["data"].update(corpus="synthetic:induction", context=24,
                        options={"vocab": 16, "length": 8, "min_length": 4, "distinct": True})
    tiny["eval"].update(repeat_loss=True, test=False)
    out = tmp_path / "runs"
    assert main(["run", str(write_yaml("repeat.yaml", tiny)), "--out", str(out)]) == 0
    (summary,) = _summaries(out).values()
    metrics = summary["metrics"]
    repeat, fresh = metrics["val/loss_repeat"], metrics["val/loss_fresh"]
    whole = metrics["val/loss"]
    # the whole loss is the token-weighted mean of its two parts
    assert min(repeat, fresh) <= whole <= max(repeat, fresh)
    with open(out / summary["run_id"] / "metrics.csv", newline="") as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("val/loss_repeat")]
    assert len(logged) == 3  # every evaluation: val_every 10 of 20 steps, then the final one


def test_repeat_loss_needs_the_causal_objective(tiny, write_yaml, capsys):
    tiny["task"]["objective"] = "masked"
    tiny["model"]["mask"] = "bidirectional"
    tiny["eval"]["repeat_loss"] = True
    assert main(["validate", str(write_yaml("masked.yaml", tiny))]) == 2
    assert "eval.repeat_loss" in capsys.readouterr().err
