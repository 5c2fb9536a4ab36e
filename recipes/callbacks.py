"""The runner's own Lightning callbacks: resume points (and stopping at a step boundary) and
the progress bar.

Lightning calls every hook of every callback on every training step (six hooks, each wrapped in
a profiler context named after the callback's state key), so each callback a run carries costs
time whether or not it has work to do. The runner keeps the list short: these two, plus the
throughput clock (`measure.Throughput`).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from .rundir import atomic_path

#: set in a checkpoint written at a step boundary (periodically or on a stop request): a point
#: a run resumes from exactly. One written because training raised is not.
EXACT = "tzoo_exact_resume_point"


class Interrupted(Exception):
    """The user stopped the command; the current run was checkpointed."""


class StopRequest:
    """Set by a signal handler (Ctrl-C, SIGTERM), honoured at the next step boundary.
    `handler`: that handler, while it is installed (the runner's)."""

    def __init__(self) -> None:
        self.requested = False
        self.handler: Any = None


class StepCheckpoints(L.Callback):
    """`last.ckpt` every `every` training steps; `interrupted.ckpt` when a stop is requested
    (then `Interrupted` is raised) or training raises.

    A requested stop takes effect between two steps, where the checkpoint is the same exact
    resume point `last.ckpt` is: an interrupt in the middle of a step (after the optimizer
    stepped, before the step counter moved) would resume into a different run. A hard
    KeyboardInterrupt (Ctrl-C twice) writes nothing: `last.ckpt` stays the resume point.

    Does the job of Lightning's ModelCheckpoint + OnExceptionCheckpoint pair for a step-based
    run, with less per-step machinery (ModelCheckpoint formats its state key, a repr of its
    settings, on each of the six per-step hook calls), and writes each file under a temporary
    name first, so a crash mid-write never leaves a truncated resume point.

    With gradient accumulation Lightning calls the batch hooks once per micro-batch; only the
    one that completed an optimizer step is a step boundary. Under data parallelism every
    process saves (Lightning writes from global rank 0) and a stop asked of any process stops
    them all at the same step."""

    def __init__(self, last: str | Path, interrupted: str | Path, every: int,
                 stop: StopRequest | None = None):
        self.last, self.interrupted = Path(last), Path(interrupted)
        self.every = max(1, int(every))
        self.stop = stop
        self._boundary = -1  # the step of the last boundary seen
        self._exact = True

    def on_train_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._boundary = trainer.global_step
        self._reclaim_sigterm()

    def on_validation_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._reclaim_sigterm()

    def on_test_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._reclaim_sigterm()

    def _reclaim_sigterm(self) -> None:
        """Lightning installs its own SIGTERM handler at every fit/validate/test; under DDP it
        signals the other processes and broadcasts from inside the handler, which can meet
        another collective in flight and hang every process. The runner's handler only asks
        for a stop, which the processes agree on at the next step boundary."""
        handler = self.stop.handler if self.stop is not None else None
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self._boundary:  # inside an accumulation: not a boundary
            return
        self._boundary = trainer.global_step
        if trainer.global_step % self.every == 0:
            self._save(trainer, self.last)
        self.stop_if_requested(trainer)

    def stop_if_requested(self, trainer: L.Trainer) -> None:
        """At a step boundary (or between evaluations): checkpoint and raise `Interrupted` if
        a stop was asked for (of any process)."""
        requested = self.stop is not None and self.stop.requested
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            self._save(trainer, self.interrupted)
            raise Interrupted()

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        # Kept for inspection, never resumed from (not exact). Under data parallelism saving
        # is collective, and the other processes may not have raised.
        if trainer.world_size == 1 and not isinstance(exception, (KeyboardInterrupt,
                                                                  Interrupted)):
            self._save(trainer, self.interrupted, exact=False)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[EXACT] = self._exact

    def _save(self, trainer: L.Trainer, path: Path, *, exact: bool = True) -> None:
        # Lightning writes the file from the global-zero process only, which publishes it.
        self._exact = exact
        try:
            with atomic_path(path, publish=trainer.is_global_zero) as temporary:
                trainer.save_checkpoint(temporary)
        finally:
            self._exact = True


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, redrawn at most every `interval` seconds rather than every N
    steps, and showing the task's latest training loss (`Task.step_metrics`, which the task
    writes straight to the loggers rather than through `self.log`).

    A redraw (postfix, counters, the terminal write) costs about a millisecond; every 10 steps
    that is ~0.1 ms a step, ~1 % of a small model's step, for updates faster than anyone reads.
    """

    def __init__(self, interval: float = 0.5):
        super().__init__(refresh_rate=1)
        self.interval = interval
        self._drawn_at = 0.0

    def _due(self, n: int, total: int | float | None) -> bool:
        now = time.monotonic()
        if now - self._drawn_at < self.interval and n != total:
            return False
        self._drawn_at = now
        return True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._due(batch_idx + 1, self.train_progress_bar.total):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._due(batch_idx + 1, self.val_progress_bar.total):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx,
                                            dataloader_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        shown = super().get_metrics(trainer, pl_module)
        shown.pop("v_num", None)
        loss = getattr(pl_module, "step_metrics", {}).get("train/loss")
        return {**({"loss": f"{loss:.3f}"} if loss is not None else {}), **shown}
