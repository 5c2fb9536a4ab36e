"""Timing on a shared, noisy machine: interleaved repeats, medians with min–max.

Two things compared in one process are measured round-robin (A B C, then B C A, ...), so a
burst of load from a neighbour hits every contender of a round instead of one contender's whole
series; a ratio is taken per round (both sides of a pair saw the same load) and summarised by
its median.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Stat:
    """Median of repeated measurements, with the range they spanned."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(finite), min(finite), max(finite), len(finite))

    def scaled(self, factor: float) -> Stat:
        """The same numbers times `factor` (a negative factor swaps low and high)."""
        ends = sorted((self.low * factor, self.high * factor))
        return Stat(self.median * factor, ends[0], ends[1], self.n)

    def inverse(self, numerator: float = 1.0) -> Stat:
        """numerator / x: seconds per step -> steps per second (the range flips)."""
        return Stat(numerator / self.median, numerator / self.high, numerator / self.low, self.n)

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready; NaN (nothing measured) becomes null."""

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {"median": finite(self.median), "min": finite(self.low),
                "max": finite(self.high), "n": self.n}

    def text(self, digits: int = 3) -> str:
        return f"{self.median:.{digits}g} ({self.low:.{digits}g}–{self.high:.{digits}g})"


def seconds_per_call(function: Callable[[], object], calls: int) -> float:
    """Mean wall time of `calls` back-to-back calls (garbage collected first, not during)."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def round_robin(contenders: dict[str, Callable[[], T]], repeats: int) -> dict[str, list[T]]:
    """Call every contender once per round, rotating who goes first; collect what each returns
    (its timings). Rotation spreads slow drifts (thermal, neighbours) evenly over contenders."""
    names = list(contenders)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name]())
    return results


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> Stat:
    """Per-round ratios numerator/denominator, summarised."""
    return Stat.of([a / b for a, b in zip(numerator, denominator, strict=True) if b > 0])


def matmul_peak_gflops(sizes: Sequence[int] = (1024, 1536, 2048), reps: int = 7) -> dict:
    """The machine's fp32 matmul peak at the current thread count: for each size the median
    GFLOP/s of `reps` square matmuls; the peak is the best of those medians (small sizes are
    dominated by overheads, the largest by memory bandwidth on some machines)."""
    per_size = {}
    for n in sizes:
        a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        torch.mm(a, b, out=out)  # first call: page faults and thread-pool start-up
        rates = []
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
        per_size[str(n)] = statistics.median(rates)
    return {"gflops": max(per_size.values()), "per_size": per_size,
            "threads": torch.get_num_threads()}
