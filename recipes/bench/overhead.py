"""The suite's own overhead: the runner's training step against a bare PyTorch loop.

Runner side: the runner's own `_trainer(config, run_dir, throughput)` (Lightning Trainer, CSV
logger, checkpoint and progress-bar callbacks, gradient clipping) fitting the real task on the
real data module, as `tzoo run` does. Its throughput callback also stamps every training batch
start; the step time is the mean interval between stamps (wall clock, and this process's CPU time,
which a noisy neighbour disturbs far less), which includes everything Lightning does per
step (fetching the batch, logging every `log_every` steps, callbacks, the progress bar). The
first interval of a fit (iterator start-up) and the end-of-fit validation are left out. The
progress bar is written to a buffer, not the terminal.

Bare side: the same model (same seed), the same batches (the same data module's loader), the
same loss (`task.loss`), AdamW + schedule + clipping (subjects.Subject.train_step), in a plain
loop; the time spent waiting for the next batch is recorded apart: the data-loading share.

Rounds alternate the two sides; the overhead is the per-round ratio runner / bare − 1.
With `compile`, a third contender runs the bare loop on `torch.compile(model)`; compile time
(the first step) and any failure are reported as they are.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from tzoo.recipes.measure import Throughput
from tzoo.recipes.quiet import quiet_lightning
from tzoo.recipes.runner import _trainer

from .subjects import Subject, build_subject, build_task, with_overrides
from .timing import Stat, paired_ratios, round_robin


class ClockedThroughput(Throughput):
    """The runner's throughput callback, also stamping wall and process-CPU clocks at the start
    of every training batch (one callback, as in a real run, rather than an extra one)."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))
        super().on_train_batch_start(trainer, module, batch, batch_idx)

    def mean_interval(self) -> dict[str, float]:
        """Mean step interval, wall and CPU, leaving out the first (iterator start-up)."""
        if len(self.stamps) < 3:
            return {"step_s": float("nan"), "cpu_s": float("nan")}
        (wall0, cpu0), (wall1, cpu1) = self.stamps[1], self.stamps[-1]
        n = len(self.stamps) - 2
        return {"step_s": (wall1 - wall0) / n, "cpu_s": (cpu1 - cpu0) / n}


def _runner_steps(config: dict, steps: int, run_dir: Path, seed: int):
    """A fresh Trainer fitting `steps` + 1 steps of the real task; returns seconds per step."""
    task, module = build_task(config, seed)

    def run() -> dict[str, float]:
        clock = ClockedThroughput()
        trainer = _trainer(config, run_dir, clock)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            called = time.perf_counter()
            trainer.fit(task, datamodule=module)
        # From fit() to the second batch: Lightning's set-up and the first step, paid once a run.
        startup = clock.stamps[1][0] - called if len(clock.stamps) > 1 else float("nan")
        return {**clock.mean_interval(), "startup_s": startup}

    return run


def _bare_steps(subject: Subject, module: L.LightningDataModule, steps: int):
    """The bare loop over the data module's own loader; returns (s/step, data s/step)."""

    def run() -> dict[str, float]:
        loader = iter(module.train_dataloader())
        next(loader)  # iterator start-up, as the runner side's first interval is dropped
        data = total = 0.0
        cpu = time.process_time()
        for _ in range(steps):
            start = time.perf_counter()
            batch = next(loader)
            fetched = time.perf_counter()
            subject.train_step(batch)
            data += fetched - start
            total += time.perf_counter() - start
        return {"step_s": total / steps, "data_s": data / steps,
                "cpu_s": (time.process_time() - cpu) / steps}

    return run


def bench_overhead(config: dict, *, steps: int = 30, repeats: int = 5, compile: bool = False,
                   seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, Any]:
    quiet_lightning()
    # Enough steps per fit that logging every `log_every` steps is amortised as in a real run;
    # validation is made small (it runs after the timed steps) and nothing is checkpointed.
    fit_steps = steps + 2
    config = with_overrides(config, **{
        "train.steps": fit_steps, "train.val_every": fit_steps,
        "train.checkpoint_every": 10 * fit_steps, "eval.batches": 1,
        "eval.context_multipliers": [1]})
    if config["train"].get("threads"):
        torch.set_num_threads(int(config["train"]["threads"]))
    with tempfile.TemporaryDirectory(prefix="tzoo-bench-") as tmp:
        runner = _runner_steps(config, steps, Path(tmp), seed)
        subject = build_subject("bare", config, seed)
        _, module = build_task(config, seed)
        bare = _bare_steps(subject, module, steps)
        contenders: dict[str, Callable[[], Any]] = {"runner": runner, "bare": bare}
        compiled: dict[str, Any] = {"requested": compile}
        if compile:
            compiled.update(_compiled_contender(config, module, steps, seed, contenders))
        echo(f"overhead: warm-up, then {repeats} rounds of {steps} steps "
             f"({', '.join(contenders)})")
        for run in contenders.values():
            run()
        rounds = round_robin(contenders, repeats)
    runner_s = [r["step_s"] for r in rounds["runner"]]
    bare_s = [r["step_s"] for r in rounds["bare"]]
    runner_cpu = [r["cpu_s"] for r in rounds["runner"]]
    bare_cpu = [r["cpu_s"] for r in rounds["bare"]]
    data_share = [r["data_s"] / r["step_s"] for r in rounds["bare"]]
    tokens = subject.mean_tokens
    result: dict[str, Any] = {
        "size": {k: config["model"][k] for k in ("d_model", "layers", "heads")}
        | {"context": config["data"]["context"], "batch_size": config["data"]["batch_size"],
           "corpus": config["data"]["corpus"], "tokenizer": config["data"]["tokenizer"],
           "log_every": config["train"]["log_every"], "progress": config["train"]["progress"]},
        "steps_per_round": steps, "repeats": repeats,
        "runner_step_ms": Stat.of([1e3 * s for s in runner_s]).to_dict(),
        "bare_step_ms": Stat.of([1e3 * s for s in bare_s]).to_dict(),
        "runner_over_bare": paired_ratios(runner_s, bare_s).to_dict(),
        "runner_startup_ms": Stat.of([1e3 * r["startup_s"] for r in rounds["runner"]]).to_dict(),
        "overhead_pct": Stat.of([100 * (r / b - 1) for r, b in zip(runner_s, bare_s,
                                                                  strict=True)]).to_dict(),
        # CPU time of this process per step: what other processes on a shared machine do to
        # the wall clock mostly cancels out (with one thread, CPU time ≈ the step's work).
        "runner_cpu_ms": Stat.of([1e3 * s for s in runner_cpu]).to_dict(),
        "bare_cpu_ms": Stat.of([1e3 * s for s in bare_cpu]).to_dict(),
        "runner_over_bare_cpu": paired_ratios(runner_cpu, bare_cpu).to_dict(),
        "data_ms": Stat.of([1e3 * r["data_s"] for r in rounds["bare"]]).to_dict(),
        "data_pct_of_step": Stat.of([100 * d for d in data_share]).to_dict(),
        "train_tokens_per_s": {"runner": tokens / Stat.of(runner_s).median,
                               "bare": tokens / Stat.of(bare_s).median},
        "compile": compiled,
    }
    if "compiled" in rounds:
        compiled_s = [r["step_s"] for r in rounds["compiled"]]
        compiled["step_ms"] = Stat.of([1e3 * s for s in compiled_s]).to_dict()
        compiled["eager_over_compiled"] = paired_ratios(bare_s, compiled_s).to_dict()
    return result


def _compiled_contender(config: dict, module: L.LightningDataModule, steps: int, seed: int,
                        contenders: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Add a compiled bare loop to `contenders` if torch.compile works here; say what happened."""
    subject = build_subject("compiled", config, seed)
    try:
        subject.task.model = torch.compile(subject.task.model)
        start = time.perf_counter()
        subject.train_step()  # compiles forward and backward
        subject.train_step()
        seconds = time.perf_counter() - start
    except Exception as error:  # compile on CPU needs a C++ toolchain; report, don't crash
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return {"ok": False, "error": last[:500]}
    contenders["compiled"] = _bare_steps(subject, module, steps)
    return {"ok": True, "compile_s": seconds}
