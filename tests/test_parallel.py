"""Data parallelism through Lightning's strategies: real DDP processes on the CPU (gloo) train
the one-process run, a killed two-process run resumes exactly, gradient accumulation, and the
device rules (exit 2)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import TINY

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.recipes.experiment import load_experiment
from tzoo.recipes.parallel import Share, check_machine, writes_results
from tzoo.recipes.runner import EarlyStop, run_one

#: Measured: the two-process validation losses differ from one process's by at most ~5e-7
#: (float32 rounding: the mean of two half-batch mean gradients is the full batch's mean
#: gradient summed in another order). 1e-5 leaves room for other CPUs' kernels while a real
#: difference (a duplicated or missing slice, another batch) moves the loss by > 1e-2.
DDP_TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def _config(**train) -> dict:
    config = json.loads(json.dumps(TINY))
    config["train"].update(steps=30, val_every=10, checkpoint_every=5, threads=1, **train)
    return config


def _write(path: Path, config: dict) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tzoo.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _wait_for_checkpoint(process: subprocess.Popen, out: Path, timeout: float = 240) -> None:
    """Until the run under `out` has written its first periodic checkpoint."""
    deadline = time.monotonic() + timeout
    while not list(out.glob("*/checkpoints/last.ckpt")):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"no checkpoint within {timeout:.0f} s"
        time.sleep(0.02)


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def _run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _curve(run_dir: Path, key: str) -> dict[int, float]:
    curve: dict[int, float] = {}
    for row in _rows(run_dir):
        if row.get(key):
            curve.setdefault(int(row["step"]), float(row[key]))
    return curve


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """One experiment trained by one process and by two DDP processes (gloo)."""
    root = tmp_path_factory.mktemp("ddp")
    one = _write(root / "one.yaml", _config())
    two = _write(root / "two.yaml", _config(devices=2, strategy="ddp"))
    process = _cli("run", str(two), "--out", str(root / "two" / "runs"))
    assert main(["run", str(one), "--out", str(root / "one" / "runs")]) == 0
    output = _finish(process)
    return root, two, output


def test_two_processes_train_the_one_process_run(ddp):
    root, _, output = ddp
    one, two = _run_dir(root / "one" / "runs"), _run_dir(root / "two" / "runs")
    assert one.name == two.name  # devices are not part of a run's identity
    assert output.count("runs completed") == 1  # rank 1 prints nothing of its own
    val_one, val_two = _curve(one, "val/loss"), _curve(two, "val/loss")
    assert sorted(val_two) == sorted(val_one) == [10, 20, 30]  # the final one is at 30 too
    gap = max(abs(val_one[s] - val_two[s]) for s in val_one)
    assert gap <= DDP_TOLERANCE, gap
    # The logged training loss is the whole global batch's (reduced across processes).
    train_one, train_two = _curve(one, "train/loss"), _curve(two, "train/loss")
    assert sorted(train_two) == list(range(30))  # each step once: only rank 0 logs
    assert max(abs(train_one[s] - train_two[s]) for s in train_one) <= DDP_TOLERANCE
    summary_one, summary_two = _summary(one), _summary(two)
    assert summary_two["status"] == "completed" and summary_two["processes"] == 2
    # tokens/s counts both processes' tokens: together the whole batches, as one process.
    assert summary_two["tokens_trained"] == summary_one["tokens_trained"] == 30 * 8 * 32
    assert summary_two["peak_mem_mb"] is not None
    for key, value in summary_one["metrics"].items():
        assert summary_two["metrics"][key] == pytest.approx(value, abs=DDP_TOLERANCE)
    # Only rank 0 wrote: no second copy of anything, no temporary left behind.
    assert sorted(p.name for p in two.rglob("*")) == sorted(p.name for p in one.rglob("*"))


def test_killed_two_process_run_resumes_to_the_same_result(ddp):
    """SIGKILL to the whole process group (rank 0 and the rank Lightning started) after the
    first checkpoint, then the same command: the resumed run computes what the uninterrupted
    two-process run did, exactly (batches are functions of (seed, step); the RNG and the
    optimizer come back from the checkpoint)."""
    root, two, _ = ddp
    out = root / "killed" / "runs"
    process = _cli("run", str(two), "--out", str(out), start_new_session=True)
    try:
        _wait_for_checkpoint(process, out)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    run_dir = _run_dir(out)
    assert _summary(run_dir)["status"] == "running"
    assert not (run_dir / "checkpoints" / "final.pt").exists()

    _finish(_cli("run", str(two), "--out", str(out)))
    resumed, fresh = _summary(run_dir), _summary(_run_dir(root / "two" / "runs"))
    assert resumed["status"] == "completed" and 5 <= resumed["resumed_from_step"] < 30
    assert resumed["metrics"] == fresh["metrics"]  # exact
    assert _curve(run_dir, "train/loss") == _curve(_run_dir(root / "two" / "runs"),
                                                    "train/loss")


def test_sigterm_to_rank_zero_stops_every_process_at_one_step(ddp):
    """SIGTERM (a scheduler's stop) to rank 0 alone: the processes agree on the next step
    boundary, checkpoint there and exit 130; no process hangs in a collective (Lightning's own
    SIGTERM handler, which broadcasts from inside the handler, is kept out). The rerun resumes
    to the uninterrupted result."""
    root, two, _ = ddp
    out = root / "stopped" / "runs"
    process = _cli("run", str(two), "--out", str(out))
    try:
        _wait_for_checkpoint(process, out)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=180)
    finally:
        process.kill()
    assert process.returncode == 130, output
    run_dir = _run_dir(out)
    assert _summary(run_dir)["status"] == "interrupted"
    _finish(_cli("run", str(two), "--out", str(out)))
    resumed = _summary(run_dir)
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] >= 5
    assert resumed["metrics"] == _summary(_run_dir(root / "two" / "runs"))["metrics"]


# ------------------------------------------------------------------- gradient accumulation


class _StopAt(L.Callback):
    """Ends a run on purpose at `step` (as a sweep's pruner would): training raises."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise EarlyStop("stopped for the test")


def test_accumulation_trains_the_same_batch_and_resumes_exactly(write_yaml, tmp_path):
    """Two micro-batches of 4 per step train what one batch of 8 does (within rounding); a
    run that stopped mid-way (after step 12, the last resume point at 10) resumes from step
    10's checkpoint, not from the one training's exception wrote, and ends exactly where an
    uninterrupted run does."""
    whole = load_experiment(write_yaml("whole.yaml", _config()))
    split = load_experiment(write_yaml("split.yaml", _config(accumulate=2)))
    (spec_whole,), (spec_split,) = whole.plan(), split.plan()
    assert spec_whole.run_id == spec_split.run_id
    base = run_one(spec_whole, tmp_path / "whole" / spec_whole.run_id, "tiny")
    fresh = run_one(spec_split, tmp_path / "fresh" / spec_split.run_id, "tiny")
    assert base.status == fresh.status == "completed"
    val_whole, val_split = _curve(base.run_dir, "val/loss"), _curve(fresh.run_dir, "val/loss")
    assert sorted(val_split) == sorted(val_whole) == [10, 20, 30]  # every 10 steps
    assert max(abs(val_whole[s] - val_split[s]) for s in val_whole) <= DDP_TOLERANCE
    assert sorted(_curve(fresh.run_dir, "train/loss")) == list(range(30))

    stopped_dir = tmp_path / "stopped" / spec_split.run_id
    with pytest.raises(EarlyStop):
        run_one(spec_split, stopped_dir, "tiny", callbacks=[_StopAt(12)])
    assert (stopped_dir / "checkpoints" / "interrupted.ckpt").is_file()
    resumed = run_one(spec_split, stopped_dir, "tiny")
    assert resumed.status == "completed"
    assert _summary(stopped_dir)["resumed_from_step"] == 10
    assert _summary(stopped_dir)["metrics"] == _summary(fresh.run_dir)["metrics"]
    assert _curve(stopped_dir, "train/loss") == _curve(fresh.run_dir, "train/loss")


def test_shares_cover_the_batch_once():
    rows = [Share(rank, 2, 2).rows(8, micro) for rank in range(2) for micro in range(2)]
    assert [list(range(8))[r] for r in rows] == [[0, 1], [2, 3], [4, 5], [6, 7]]


# ------------------------------------------------------------------------------ bad input


def test_devices_that_are_not_here_exit_2_before_anything_trains(write_yaml, tmp_path, capsys):
    out = tmp_path / "runs"
    path = write_yaml("gpus.yaml", _config(accelerator="gpu", devices=2, strategy="ddp"))
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the GPUs")
    assert main(["run", str(path), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "gpus.yaml" in message and "train." in message and "Traceback" not in message
    assert not out.exists()


@pytest.mark.parametrize(("train", "gpus", "key", "words"), [
    ({"accelerator": "gpu", "devices": 4}, 2, "train.devices", "has 2 CUDA GPU"),
    ({"accelerator": "cuda", "devices": 1}, 0, "train.accelerator", "no CUDA GPU"),
    ({"accelerator": "auto", "devices": 2}, 0, "train.devices", "accelerator: cpu"),
    ({"accelerator": "auto", "devices": 1, "strategy": "fsdp"}, 0, "train.strategy", "FSDP"),
])
def test_machine_rules(train, gpus, key, words):
    config = {"train": {"accelerator": "cpu", "devices": 1, "strategy": "auto", **train}}
    with pytest.raises(ConfigError) as raised:
        check_machine(config, gpus=gpus)
    assert raised.value.key == key and words in str(raised.value)
    check_machine({"train": {**config["train"], "accelerator": "cpu", "strategy": "ddp"}},
                  gpus=gpus)  # processes on the CPU are always there


def test_only_global_rank_zero_writes(monkeypatch):
    config = {"train": {"devices": 2, "num_nodes": 1}}
    for name in ("RANK", "NODE_RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert writes_results(config)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not writes_results(config)
    assert writes_results({"train": {"devices": 1, "num_nodes": 1}})  # one process: always
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert not writes_results(config)
