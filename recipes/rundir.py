"""The run directory contract: paths, atomic writes, and reading a run's state.

    runs/<experiment>/<run-id>/
        config.yaml        the resolved configuration (plus seed and run id)
        summary.json       status, metrics, cost, data fingerprint, versions (atomic)
        metrics.csv        Lightning's CSV log: one row per logging step
        tokenizer.json     the tokenizer, for generation and probes
        checkpoints/       last.ckpt (resume), interrupted.ckpt, final.pt (weights only)
"""

from __future__ import annotations

import csv
import functools
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import yaml

SUMMARY = "summary.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
LAST_CHECKPOINT = "checkpoints/last.ckpt"
INTERRUPTED_CHECKPOINT = "checkpoints/interrupted.ckpt"
#: statuses after which rerunning the experiment does not train the run again
FINAL_STATUSES = ("completed", "diverged")


def write_atomic(path: Path, text: str) -> None:
    """Write-then-rename, so a reader never sees half a file and a crash never loses the old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_plain) + "\n")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return None


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop logged rows after `last_step`: on resume they are logged again, never twice."""
    path = run_dir / METRICS
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = [row for row in reader if row.get("step") in ("", None) or
                int(float(row["step"])) <= last_step]
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of the stack and the suite's commit, read once per process: the code a process
    runs is the code it imported, whatever is committed while it trains."""
    import lightning
    import torch

    import tzoo

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "tzoo": tzoo.__version__,
        "git": git_commit(),
    }


def git_commit() -> str:
    """The suite's commit (with '+dirty' when the tree has changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                capture_output=True, text=True, timeout=5, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout
        return commit.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
