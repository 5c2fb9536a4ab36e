"""The SLURM examples (examples/slurm/): a job array's task k runs shard k+1 of N, and the
multi-node script hands srun a data-parallel run sized from SLURM's variables. Nothing here
runs SLURM: the scripts run under bash with the variables SLURM would set (and, for srun, a
stand-in that runs the command once)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import TINY

from tzoo.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "slurm"


def _sbatch(script: str, args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(["bash", str(EXAMPLES / script), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600, check=False, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _experiment(write_yaml, **train) -> Path:
    config = json.loads(json.dumps(TINY))
    config["train"].update(steps=10, val_every=10, threads=1, **train)
    config["eval"]["test"] = False
    config["seeds"] = [0, 1]
    return write_yaml("exp.yaml", config)


def test_array_task_k_runs_shard_k_plus_1(write_yaml, tmp_path):
    path = _experiment(write_yaml)
    for task in range(3):
        out = _sbatch("array.sbatch", [str(path)], {
            "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "3",
            "TZOO": "echo tzoo"}, tmp_path)
        assert out.splitlines()[-1] == f"tzoo run {path} --shard {task + 1}/3"
    # For real, the second of two tasks trains the second of the two runs, and only it.
    out = tmp_path / "runs"
    _sbatch("array.sbatch", [str(path), "--out", str(out)], {
        "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2",
        "TZOO": f"{sys.executable} -m tzoo.cli", "OMP_NUM_THREADS": "1"}, tmp_path)
    (summary,) = out.glob("*/summary.json")
    assert json.loads(summary.read_text())["seed"] == 1


def test_multi_node_ddp_is_sized_from_slurm(write_yaml, tmp_path, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/usr/bin/env bash\nexec "$@"\n')  # one task, in place
    (bin_dir / "srun").chmod(0o755)
    path = _experiment(write_yaml)
    out = _sbatch("ddp.sbatch", [str(path)], {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_JOB_NUM_NODES": "2", "TZOO": "echo tzoo"}, tmp_path)
    command = shlex.split(out.splitlines()[-1])
    assert command[:3] == ["tzoo", "run", str(path)]
    settings = [command[i + 1] for i, word in enumerate(command) if word == "--set"]
    assert settings == ["train.strategy=ddp", "train.accelerator=gpu", "train.devices=4",
                        "train.num_nodes=2"]
    # The run it asks for is a valid one: 8 processes share the global batch of 8.
    assert main(["validate", str(path), *[a for s in settings for a in ("--set", s)]]) == 0
    assert main(["validate", str(path), "--set", "data.batch_size=12",
                 *[a for s in settings for a in ("--set", s)]]) == 2
    assert "data.batch_size" in capsys.readouterr().err
