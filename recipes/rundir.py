"""The run directory contract: every file name, the one atomic write, and the run's summary.

    runs/<experiment>/<run-id>/
        config.yaml        the resolved configuration (plus seed and run id)
        summary.json       a `RunSummary`: status, metrics, cost, data fingerprint, versions
        metrics.csv        Lightning's CSV log: one row per logging step and per evaluation,
                           each labelled with the optimizer steps taken when it was measured
        tokenizer.json     the tokenizer in HF `tokenizers`' format (Tokenizer.from_file)
        tokenizer.tzoo.json    the suite's metadata of it: kind, spec, fingerprint
        error.log          the traceback of a failed run
        tracking.json      the MLflow run id, when train.logger has mlflow
        tensorboard/, wandb/   what those trackers write, when train.logger names them
        checkpoints/       last.ckpt (resume), interrupted.ckpt, final.pt (weights only)

The runner writes these files, reports and sweeps read them; both sides name them here. Every
file is written under a temporary name and renamed (`atomic_path`), so a reader never sees half
a file and a crash never loses the previous one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUMMARY = "summary.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
TOKENIZER = "tokenizer.json"
ERROR_LOG = "error.log"
#: the trackers' own ids of the run (an MLflow run id), so a resume logs into the same run
TRACKING = "tracking.json"
FINAL_CHECKPOINT = "checkpoints/final.pt"
LAST_CHECKPOINT = "checkpoints/last.ckpt"
INTERRUPTED_CHECKPOINT = "checkpoints/interrupted.ckpt"
#: statuses after which rerunning the experiment does not train the run again
FINAL_STATUSES = ("completed", "diverged")
BASE_NAME = "base"
UNKNOWN = "unknown"
#: the column every training row of metrics.csv fills (evaluation rows leave it empty)
TRAINING_LOSS = "train/loss"


# ------------------------------------------------------------------------------ writing


@contextlib.contextmanager
def atomic_path(path: Path, *, publish: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends
    without an error (and `publish` is true: under DDP only the process that wrote the file
    publishes it). A failed write leaves neither a partial file nor the temporary behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        if publish:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_plain) + "\n")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def truncate_metrics(run_dir: Path, *, train_before: int, evaluations_through: int) -> None:
    """Drop the rows a resumed run logs again: training rows from step `train_before` on,
    evaluation rows (those without a training loss) after `evaluations_through`."""
    path = run_dir / METRICS
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = [row for row in reader if _kept(row, train_before, evaluations_through)]
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _kept(row: dict[str, str], train_before: int, evaluations_through: int) -> bool:
    if row.get("step") in ("", None):
        return True
    step = int(float(row["step"]))
    if row.get(TRAINING_LOSS):
        return step < train_before
    return step <= evaluations_through


# ------------------------------------------------------------------------------ the summary


def _number(value: Any) -> float | None:
    """A float, NaN included (a diverged run's loss); None for null or anything non-numeric."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or math.isnan(number) else int(number)


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def variant_label(variant: dict[str, Any]) -> str:
    """'model.position=rotary,model.norm=pre' for a variant dict; 'base' for {}."""
    if not variant:
        return BASE_NAME
    return ",".join(f"{k}={v}" for k, v in sorted(variant.items()))


@dataclass(kw_only=True)
class RunSummary:
    """What `summary.json` holds: written by the runner at the start of a run (status
    "running"), rewritten at its end, whatever the end; read by reports, sweeps and resumes.

    Task-specific entries (a translation run's samples, an LM's lengths its positions cannot
    represent) are in `task_fields`, stored at the top level of the JSON beside the others."""

    experiment: str
    run_id: str
    status: str = "running"
    variant: dict[str, Any] = field(default_factory=dict)
    variant_name: str = BASE_NAME
    base_variant: bool = False
    seed: int | None = None
    error: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    #: the experiment's `ablate.reference`, which reports compare this variant with
    reference: dict[str, Any] = field(default_factory=dict)
    resumed_from_step: int = 0
    steps: int | None = None
    diverged_at_step: int | None = None
    reused_from: str | None = None
    params: int | None = None
    tokens_per_s: float | None = None
    #: training tokens of this (re)start, every process's: tokens_per_s's numerator
    tokens_trained: int | None = None
    #: processes that trained the run (data parallelism), when more than one
    processes: int | None = None
    #: CUDA_VISIBLE_DEVICES of the process that trained it (one device per process)
    visible_devices: str | None = None
    peak_mem_mb: float | None = None
    wall_s: float | None = None
    data_fingerprint: str = UNKNOWN
    tokenizer: str | None = None
    vocab_size: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    task_fields: dict[str, Any] = field(default_factory=dict)

    #: left out of the JSON when empty: most runs have none
    _OPTIONAL = ("reference", "reused_from", "diverged_at_step", "processes", "visible_devices")

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunSummary)
                if f.name != "task_fields"}
        data = {key: value for key, value in data.items()
                if key not in self._OPTIONAL or value not in (None, {})}
        return {**data, **self.task_fields}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, run_id: str = UNKNOWN,
                  experiment: str = UNKNOWN) -> RunSummary:
        """Tolerant of what other versions (or a half-broken run) wrote: every field is
        coerced to its type or left at its default; unknown keys become `task_fields`."""
        names = {f.name for f in dataclasses.fields(cls)}
        variant = _mapping(data.get("variant"))
        return cls(
            experiment=str(data.get("experiment") or experiment),
            run_id=str(data.get("run_id") or run_id),
            status=str(data.get("status") or UNKNOWN),
            variant=variant,
            variant_name=str(data.get("variant_name") or variant_label(variant)),
            base_variant=bool(data.get("base_variant", not variant)),
            seed=_int(data.get("seed")),
            error=data.get("error") or None,
            metrics={str(k): _number(v) for k, v in _mapping(data.get("metrics")).items()},
            reference=_mapping(data.get("reference")),
            resumed_from_step=_int(data.get("resumed_from_step")) or 0,
            steps=_int(data.get("steps")),
            diverged_at_step=_int(data.get("diverged_at_step")),
            reused_from=data.get("reused_from") or None,
            params=_int(data.get("params")),
            tokens_per_s=_number(data.get("tokens_per_s")),
            tokens_trained=_int(data.get("tokens_trained")),
            processes=_int(data.get("processes")),
            visible_devices=data.get("visible_devices"),
            peak_mem_mb=_number(data.get("peak_mem_mb")),
            wall_s=_number(data.get("wall_s")),
            data_fingerprint=str(data.get("data_fingerprint") or UNKNOWN),
            tokenizer=data.get("tokenizer"),
            vocab_size=_int(data.get("vocab_size")),
            versions={str(k): str(v) for k, v in _mapping(data.get("versions")).items()},
            task_fields={k: v for k, v in data.items() if k not in names},
        )


class SummaryUnreadable(ValueError):
    """summary.json exists but does not hold a JSON object."""


def load_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary; None when there is none yet; `SummaryUnreadable` when it is broken."""
    path = run_dir / SUMMARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SummaryUnreadable(f"{SUMMARY} could not be read: {error}") from error
    if not isinstance(data, dict):
        raise SummaryUnreadable(f"{SUMMARY} could not be read: top level is not an object")
    return RunSummary.from_dict(data, run_id=run_dir.name)


def read_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary, or None when it is missing or unreadable."""
    try:
        return load_summary(run_dir)
    except SummaryUnreadable:
        return None


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    write_json(run_dir / SUMMARY, summary.to_dict())


def is_run_dir(path: Path) -> bool:
    """A run directory is any directory with a summary or a config in it."""
    return path.is_dir() and ((path / SUMMARY).is_file() or (path / CONFIG).is_file())


# ------------------------------------------------------------------------------ provenance


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
        return UNKNOWN
