"""One device per process: `tzoo run --shards N` and `tzoo sweep --workers N` start each
process with only its own device visible (CUDA_VISIBLE_DEVICES), round robin, checked by what
each process recorded in its runs' summaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import TINY

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.recipes.processes import choose_devices, device_env


def _experiment(write_yaml, seeds: list[int]):
    config = json.loads(json.dumps(TINY))
    config["train"].update(steps=10, val_every=10, threads=1)
    config["eval"]["test"] = False
    config["seeds"] = seeds
    return write_yaml("exp.yaml", config)


def test_each_shard_process_sees_only_its_own_device(write_yaml, tmp_path):
    """The command may hand out devices 3 and 5 (its CUDA_VISIBLE_DEVICES); by default shard
    1 gets 3 and shard 2 gets 5. (No GPU is needed: the runs train on the CPU, and what each
    process was given is what its summary records.)"""
    path, out = _experiment(write_yaml, [0, 1, 2]), tmp_path / "runs"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "tzoo.cli", "run", str(path), "--shards", "2",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = {}
    for summary in out.glob("*/summary.json"):
        data = json.loads(summary.read_text())
        assert data["status"] == "completed"
        seen[data["seed"]] = data["visible_devices"]
    # runs 0, 1, 2 -> shards 1, 2, 1 (interleaved) -> devices 3, 5, 3
    assert seen == {0: "3", 1: "5", 2: "3"}


def test_devices_round_robin():
    assert [device_env(i, ["0", "1"]) for i in range(3)] == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"},
        {"CUDA_VISIBLE_DEVICES": "0"}]
    assert device_env(4, []) == {}  # no device: the CPU, environment untouched
    assert choose_devices(None, ["2", "GPU-5f3a"]) == ["2", "GPU-5f3a"]
    assert choose_devices("GPU-5f3a", ["2", "GPU-5f3a"]) == ["GPU-5f3a"]
    with pytest.raises(ConfigError, match="visible devices: 2"):
        choose_devices("2,3", ["2"])


@pytest.mark.parametrize(("visible", "argv", "words"), [
    ("3,5", ["--shards", "2", "--devices", "4"], "devices 4 do not exist here"),
    (None, ["--shard", "1/2", "--devices", "0"], "no CUDA device is visible here"),
    ("3,5", ["--shards", "0"], "--shards"),
], ids=["not among the visible", "no GPU at all", "no shards"])
def test_devices_or_shards_that_do_not_exist_exit_2(visible, argv, words, write_yaml, tmp_path,
                                                    capsys, monkeypatch):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        pytest.importorskip("torch").cuda.device_count() == 0 or pytest.skip("GPUs here")
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    out = tmp_path / "runs"
    assert main(["run", str(_experiment(write_yaml, [0])), "--out", str(out), *argv]) == 2
    message = capsys.readouterr().err
    assert words in message and "Traceback" not in message
    assert not out.exists()
