"""One device per process: the devices a command hands out, and the processes it starts.

`tzoo run --shards N` and `tzoo sweep --workers N` start N processes; process i sees only
device `devices[i % len(devices)]` (`CUDA_VISIBLE_DEVICES`), so N processes on a box of GPUs
spread over them round robin instead of all landing on the first. `devices` defaults to every
device visible to the command (its own CUDA_VISIBLE_DEVICES, or every GPU torch counts); with
none, the processes train on the CPU and the variable is left alone.

The processes are separate interpreters (a clean torch each, a crash takes one) in their own
sessions; the command forwards Ctrl-C (SIGINT) and SIGTERM to them exactly once, so each
checkpoints its run (a second signal from the terminal could cut that short).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

from tzoo.components.errors import ConfigError

VISIBLE = "CUDA_VISIBLE_DEVICES"


def visible_devices() -> list[str]:
    """The CUDA devices this process may hand out: its CUDA_VISIBLE_DEVICES if set (ids or
    UUIDs, as CUDA reads them), else every GPU torch counts; [] on a machine without any."""
    listed = os.environ.get(VISIBLE)
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def choose_devices(text: str | None, visible: Sequence[str] | None = None) -> list[str]:
    """`--devices 0,1,2,3` (default: every visible device), each checked to exist here."""
    visible = list(visible_devices() if visible is None else visible)
    if text is None:
        return visible
    chosen = [d.strip() for d in text.split(",") if d.strip()]
    missing = [d for d in chosen if d not in visible]
    if not chosen or missing:
        shown = ", ".join(visible) if visible else "none (no CUDA device is visible here)"
        raise ConfigError(f"devices {', '.join(missing) or repr(text)} do not exist here; "
                          f"visible devices: {shown}", key="--devices")
    return chosen


def device_env(index: int, devices: Sequence[str]) -> dict[str, str]:
    """The environment that gives process `index` its own device (none: the CPU)."""
    return {VISIBLE: devices[index % len(devices)]} if devices else {}


def run_processes(commands: Sequence[Sequence[str]],
                  envs: Sequence[Mapping[str, str]]) -> list[int]:
    """Start every command with its environment added, wait for all; their exit codes."""
    processes = [subprocess.Popen(list(command), env={**os.environ, **env},
                                  start_new_session=True)
                 for command, env in zip(commands, envs, strict=True)]

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
