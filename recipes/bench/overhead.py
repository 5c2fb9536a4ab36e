"""The suite's own overhead: the runner's training step against a bare PyTorch loop.

Runner side: the runner's own `make_trainer(config, run_dir, throughput)` (Lightning Trainer, CSV
logger, checkpoint and progress-bar callbacks, gradient clipping) fitting the real task on the
real data module, as `tzoo run` does, so its step includes everything Lightning does per step
(fetching the batch, hooks, logging every `log_every` steps, the progress bar, written to a
buffer, and the memory sampler's thread). Its throughput callback also stamps the start of
every training batch.

Bare side: a twin model (same seed), batches from the same data module's loader, the same loss
(`task.loss`), AdamW + schedule + clipping (subjects.Subject.train_step) in plain PyTorch.

The two alternate step by step inside one fit (`InterleavedBare`): after each runner step, one
bare step runs and is timed; the runner's step is its batch-to-batch interval minus that bare
step. Pairs one step apart see the same machine, which matters on a shared, noisy box where
whole rounds seconds apart did not (their ratios wandered ±5 %). The overhead is total runner
time / total bare time per fit, summarised over fits; the median per-step ratio is reported
beside it. The bare side's wait for its next batch is the data-loading share. Lightning's
once-per-run set-up (fit() to the second batch) is reported apart.

With `compile`, the bare loop and the bare loop on `torch.compile(model)` run in alternating
rounds; compile time (the first steps) and any failure are reported as they are.
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

from tzoo.recipes.measure import PeakMemory, Throughput
from tzoo.recipes.quiet import quiet_lightning
from tzoo.recipes.runner import make_trainer
from tzoo.recipes.task import Task

from .subjects import Subject, build_subject, seeded_task, with_overrides
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


class InterleavedBare(L.Callback):
    """After every runner step, one bare-loop step of a twin model, timed on its own.

    Runner and bare steps alternate one to one inside the same fit, so both sides of every pair
    see the same machine (a neighbour's burst of load hits both); the runner's own step time is
    its batch-to-batch interval minus the bare step that ran inside it. This callback's five
    idle hooks (~10 µs a step) count against the runner: the error is on the safe side."""

    def __init__(self, subject: Subject, module: L.LightningDataModule):
        self.subject = subject
        self.batches = iter(module.train_dataloader())
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.data: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        bare_batch = next(self.batches)
        fetched = time.perf_counter()
        self.subject.train_step(bare_batch)
        self.data.append(fetched - wall)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


def _interleaved_fit(config: dict, run_dir: Path, task: Task, module: L.LightningDataModule,
                     subject: Subject):
    """A function that fits the runner's Trainer with a bare step after each of its steps;
    returns the per-step pairs, the fit's first two steps left out."""

    def run() -> dict[str, list[float]]:
        clock, bare = ClockedThroughput(), InterleavedBare(subject, module)
        trainer = make_trainer(config, run_dir, clock, [bare])
        quiet = contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO())
        with quiet[0], quiet[1], PeakMemory():  # the runner samples its memory as it trains
            called = time.perf_counter()
            trainer.fit(task, datamodule=module)
        stamps = clock.stamps
        pairs = range(2, min(len(stamps) - 1, len(bare.wall)))
        return {
            "runner_s": [stamps[i + 1][0] - stamps[i][0] - bare.wall[i] for i in pairs],
            "runner_cpu_s": [stamps[i + 1][1] - stamps[i][1] - bare.cpu[i] for i in pairs],
            "bare_s": [bare.wall[i] for i in pairs],
            "bare_cpu_s": [bare.cpu[i] for i in pairs],
            "data_s": [bare.data[i] for i in pairs],
            # From fit() to the second batch: Lightning's set-up and first step, once a run.
            "startup_s": [stamps[1][0] - called - (bare.wall[0] if bare.wall else 0.0)],
        }

    return run


def _bare_steps(subject: Subject, module: L.LightningDataModule, steps: int):
    """The bare loop over the data module's own loader; returns (s/step, data s/step)."""

    def run() -> dict[str, float]:
        loader = iter(module.train_dataloader())
        next(loader)  # iterator start-up
        total = 0.0
        for _ in range(steps):
            start = time.perf_counter()
            subject.train_step(next(loader))
            total += time.perf_counter() - start
        return {"step_s": total / steps}

    return run


def _ratio_of_sums(numerator: list[float], denominator: list[float]) -> float:
    return sum(numerator) / sum(denominator) if sum(denominator) > 0 else float("nan")


def bench_overhead(config: dict, *, steps: int = 100, repeats: int = 5, compile: bool = False,
                   seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, Any]:
    quiet_lightning()
    # Enough steps per fit that logging every `log_every` steps is amortised as in a real run;
    # validation is made small (it runs after the timed steps) and nothing is checkpointed.
    fit_steps = steps + 3
    config = with_overrides(config, **{
        "train.steps": fit_steps, "train.val_every": fit_steps,
        "train.checkpoint_every": 10 * fit_steps, "eval.batches": 1,
        "eval.context_multipliers": [1]})
    if config["train"].get("threads"):
        torch.set_num_threads(int(config["train"]["threads"]))
    with tempfile.TemporaryDirectory(prefix="tzoo-bench-") as tmp:
        subject = build_subject("bare", config, seed)
        task, module = seeded_task(config, seed)
        fit = _interleaved_fit(config, Path(tmp), task, module, subject)
        echo(f"overhead: warm-up, then {repeats} fits of {steps} runner steps, each followed "
             "by a bare step")
        fit()
        fits = [fit() for _ in range(repeats)]
        compiled: dict[str, Any] = {"requested": compile}
        if compile:
            contenders = {"bare": _bare_steps(subject, module, steps)}
            compiled.update(_compiled_contender(config, module, steps, seed, contenders))
            if compiled.get("ok"):
                echo(f"torch.compile: {repeats} rounds of {steps} steps (bare, compiled)")
                for run in contenders.values():
                    run()
                rounds = round_robin(contenders, repeats)
                bare_rounds = [r["step_s"] for r in rounds["bare"]]
                compiled_rounds = [r["step_s"] for r in rounds["compiled"]]
                compiled["step_ms"] = Stat.of([1e3 * x for x in compiled_rounds]).to_dict()
                compiled["eager_over_compiled"] = paired_ratios(bare_rounds,
                                                                compiled_rounds).to_dict()
    pooled = {key: [x for f in fits for x in f[key]] for key in fits[0]}
    runner_s, bare_s = pooled["runner_s"], pooled["bare_s"]
    step_ratios = [r / b for r, b in zip(runner_s, bare_s, strict=True) if b > 0]
    fit_ratios = [_ratio_of_sums(f["runner_s"], f["bare_s"]) for f in fits]
    fit_cpu_ratios = [_ratio_of_sums(f["runner_cpu_s"], f["bare_cpu_s"]) for f in fits]
    tokens = subject.mean_tokens
    return {
        "size": {k: config["model"][k] for k in ("d_model", "layers", "heads")}
        | {"context": config["data"]["context"], "batch_size": config["data"]["batch_size"],
           "corpus": config["data"]["corpus"], "tokenizer": config["data"]["tokenizer"],
           "log_every": config["train"]["log_every"], "progress": config["train"]["progress"]},
        "design": "interleaved: one bare step after every runner step, inside the same fit",
        "steps_per_round": steps, "repeats": repeats, "pairs": len(step_ratios),
        "runner_step_ms": Stat.of([1e3 * x for x in runner_s]).to_dict(),
        "bare_step_ms": Stat.of([1e3 * x for x in bare_s]).to_dict(),
        # Headline: total runner time / total bare time of each fit (what a run's length
        # depends on), summarised over fits; the per-step median ratio is the robust check.
        "runner_over_bare": Stat.of(fit_ratios).to_dict(),
        "runner_over_bare_per_step": Stat.of(step_ratios).to_dict(),
        "overhead_pct": Stat.of([100 * (r - 1) for r in fit_ratios]).to_dict(),
        "runner_startup_ms": Stat.of([1e3 * x for x in pooled["startup_s"]]).to_dict(),
        # CPU time of this process: what other processes do to the wall clock mostly cancels
        # out (with one thread, CPU time ≈ the step's work).
        "runner_cpu_ms": Stat.of([1e3 * x for x in pooled["runner_cpu_s"]]).to_dict(),
        "bare_cpu_ms": Stat.of([1e3 * x for x in pooled["bare_cpu_s"]]).to_dict(),
        "runner_over_bare_cpu": Stat.of(fit_cpu_ratios).to_dict(),
        "data_ms": Stat.of([1e3 * x for x in pooled["data_s"]]).to_dict(),
        "data_pct_of_step": Stat.of([100 * _ratio_of_sums(f["data_s"], f["bare_s"])
                                     for f in fits]).to_dict(),
        "train_tokens_per_s": {"runner": tokens / Stat.of(runner_s).median,
                               "bare": tokens / Stat.of(bare_s).median},
        "compile": compiled,
    }


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
