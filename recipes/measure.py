"""Cost measurements a run records: training throughput and peak memory."""

from __future__ import annotations

import threading
import time

import lightning as L
import torch

from .resident import release_freed_memory, reset_high_water_mark, status_kib


class Throughput(L.Callback):
    """Training tokens per second, timing only the training steps (not evaluation). This
    process's tokens; under data parallelism the runner adds up every process's
    (`runner.across_processes`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        self._started = 0.0
        self._tokens_before = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._started = time.perf_counter()
        self._tokens_before = module.tokens_seen

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._started
        self.tokens += module.tokens_seen - self._tokens_before

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.seconds if self.seconds else None


def _rss_bytes() -> int | None:
    kib = status_kib("VmRSS")
    return None if kib is None else kib * 1024


class PeakMemory:
    """Peak memory of a run: the accelerator allocator's peak on a GPU. On a Linux CPU, the
    kernel's resident-set high-water mark over the run minus the resident size at its start,
    after handing back what earlier runs in this process freed (`resident.py`), so each run of
    a multi-run process is measured from a clean start; where the mark cannot be reset, the
    resident size sampled every 20 ms by a thread."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.cuda = torch.cuda.is_available()
        self._stop = threading.Event()
        self._peak = 0
        self._baseline = 0
        self._thread: threading.Thread | None = None
        self._kernel_mark = False
        self._measured = False
        #: the largest process's peak under data parallelism (`runner.across_processes`)
        self.across: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        release_freed_memory()
        resident = _rss_bytes()
        if resident is None:  # not Linux: nothing to read
            return self
        self._baseline = self._peak = resident
        self._kernel_mark = reset_high_water_mark() and status_kib("VmHWM") is not None
        if not self._kernel_mark:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._measured = True
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes() or 0)

    def __exit__(self, *exc) -> None:
        if self._kernel_mark:
            self._peak = max(self._peak, (status_kib("VmHWM") or 0) * 1024)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._measured:
            self._peak = max(self._peak, _rss_bytes() or 0)

    @property
    def megabytes(self) -> float | None:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        if not self._measured:
            return None
        return (self._peak - self._baseline) / 2**20
