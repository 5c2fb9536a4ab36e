"""`--workers N`: N worker processes on this machine, each `python -m tzoo.sweeps.worker`.

Separate interpreters rather than forked ones: each gets a clean torch (threads set before any
work), a crash or OOM kill takes one worker, not the sweep, and the command line is the same
one a user runs by hand on a second machine. The workers run in their own sessions and this
process forwards Ctrl-C (SIGINT) and SIGTERM to them exactly once, so each checkpoints its run
and queues its trial again (a second signal from the terminal could cut that short).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


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
                overrides: list[str]) -> list[int]:
    """Start the workers, wait for all of them; their exit codes."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    # Libraries read these at import, before the worker can call torch.set_num_threads.
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    processes = [
        subprocess.Popen(worker_command(sweep, workers=workers, index=i, trials=trials,
                                        overrides=overrides), env=env, start_new_session=True)
        for i in range(workers)
    ]

    def forward(signum: int, frame: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    handled = (signal.SIGINT, signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in handled} if main_thread else {}
    try:
        return [process.wait() for process in processes]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
