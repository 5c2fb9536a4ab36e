"""Sweeps on a real PostgreSQL server (Optuna's RDB storage): two worker processes, one killed
mid-trial, and the storage errors that must be bad input (exit 2), not a hang or a traceback.

The server is started here in a temporary folder (`postgres_server.py`); the tests that need
it skip only where none can be started (CI installs Debian's `postgresql` for them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from postgres_server import start_server
from test_sweeps import COUNTED, assert_whole, tiny_experiment, write_sweep

from tzoo.cli import main
from tzoo.recipes import rundir
from tzoo.sweeps import load_sweep
from tzoo.sweeps.storage import resolve_storage
from tzoo.sweeps.worker import prepare


@pytest.fixture(scope="module")
def server():
    running, why = start_server()
    if running is None:
        pytest.skip(f"no PostgreSQL server could be started: {why}")
    yield running
    running.stop()


def _study(url: str, tmp_path: Path) -> optuna.Study:
    storage = resolve_storage(url, tmp_path / "runs" / "sw").open()
    return optuna.load_study(study_name="sw", storage=storage)


def _worker(path: Path, index: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tzoo.sweeps.worker", str(path), "--workers", "2", "--index",
         str(index)], cwd=path.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_two_workers_one_killed_mid_trial(server, tmp_path):
    """Two workers share a study in PostgreSQL; the one whose trial has checkpointed is killed
    (SIGKILL: no chance to tidy up). The other finds the dead worker's trial, marks it failed,
    queues its parameters again and trains the retry, which resumes the same run directory:
    3 trials counted, 1 failed, none lost, none counted twice."""
    url = server.create_database("killed")
    tiny_experiment(tmp_path, steps=100, val_every=50)
    path = write_sweep(tmp_path, n_trials=3, pruner="none", storage=url)
    prepare(load_sweep(path))  # the study exists before either worker asks for a trial
    workers = {w.pid: w for w in (_worker(path, 0), _worker(path, 1))}
    study = _study(url, tmp_path)
    victim, deadline = None, time.monotonic() + 300
    try:
        while victim is None:
            assert time.monotonic() < deadline, "no trial checkpointed within 300 s"
            assert all(w.poll() is None for w in workers.values()), "a worker ended early"
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                run_dir = trial.user_attrs.get("run_dir")
                if run_dir and (Path(run_dir) / rundir.LAST_CHECKPOINT).is_file():
                    victim = workers[trial.user_attrs["worker"]["pid"]]
                    lost_number = trial.number
                    break
            time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        (survivor,) = [w for w in workers.values() if w is not victim]
        assert survivor.wait(timeout=600) == 0
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()
    # Had the survivor finished before the kill, the next sweep command recovers the trial.
    assert main(["sweep", str(path)]) == 0

    trials = _study(url, tmp_path).get_trials()
    assert_whole(trials, 3)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [lost_number]
    assert failed[0].user_attrs["status"] == "lost"
    (retried,) = [t for t in trials if t.system_attrs.get("failed_trial") == lost_number]
    assert retried.state == TrialState.COMPLETE and retried.params == failed[0].params
    assert retried.user_attrs["run_dir"] == failed[0].user_attrs["run_dir"]
    summary = rundir.read_summary(Path(retried.user_attrs["run_dir"]))
    assert summary.status == "completed" and summary.resumed_from_step > 0
    counted_runs = [t.user_attrs["run_dir"] for t in trials if t.state in COUNTED]
    assert len(set(counted_runs)) == 3  # nothing counted twice
    record = json.loads((Path(retried.user_attrs["run_dir"]) / "trial.json").read_text())
    assert record["trials"] == [lost_number, retried.number]


def test_a_study_with_another_space_exits_2(server, tmp_path, capsys):
    url = server.create_database("space")
    first = write_sweep(tmp_path, storage=url)
    prepare(load_sweep(first))
    other = write_sweep(tmp_path, storage=url,
                        space={"train.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-1}})
    assert main(["sweep", str(other)]) == 2
    message = capsys.readouterr().err
    assert "'space'" in message and "another space" in message and "train.lr" in message
    assert "Traceback" not in message


def test_an_unreachable_database_exits_2(tmp_path, capsys):
    """Nothing listens on port 1: the connection is refused at once (an unroutable host waits
    `storage.CONNECT_TIMEOUT_S`, not the OS's minutes)."""
    path = write_sweep(tmp_path, storage="postgresql://tzoo:secret@127.0.0.1:1/none")
    assert main(["sweep", str(path)]) == 2
    message = capsys.readouterr().err
    assert "'storage'" in message and "cannot open the storage" in message
    assert "secret" not in message and "Traceback" not in message
