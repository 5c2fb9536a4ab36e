"""`--workers N`: N worker processes on this machine, each `python -m tzoo.sweeps.worker`, each
with its own device (`recipes/processes.py`: `--devices`, round robin over the visible ones).

Separate interpreters rather than forked ones: each gets a clean torch (threads set before any
work), a crash or OOM kill takes one worker, not the sweep, and the command line is the same
one a user runs by hand on a second machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tzoo.recipes.processes import device_env, run_processes


def worker_command(sweep: str | Path, *, workers: int, index: int, trials: int | None,
                   overrides: list[str]) -> list[str]:
    command = [sys.executable, "-m", "tzoo.sweeps.worker", str(sweep),
               "--workers", str(workers), "--index", str(index)]
    if trials is not None:
        command += ["--trials", str(trials)]
    for text in overrides:
        command += ["--set", text]
    return command


def run_workers(sweep: str | Path, *, workers: int, trials: int | None,
                overrides: list[str], devices: Sequence[str] = ()) -> list[int]:
    """Start the workers, worker i on device devices[i % len] (the CPU when there are none),
    and wait for all of them; their exit codes."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    # Libraries read these at import, before the worker can call torch.set_num_threads.
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    commands = [worker_command(sweep, workers=workers, index=i, trials=trials,
                               overrides=overrides) for i in range(workers)]
    return run_processes(commands, [{**env, **device_env(i, devices)} for i in range(workers)])
