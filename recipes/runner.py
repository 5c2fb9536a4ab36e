"""The ablation runner: every planned run, trained once, resumable, recorded.

For each run of an experiment: skip it if it already completed (or diverged: it would again);
reuse it if the same run id completed under another experiment; resume it from its last
checkpoint if it was interrupted; otherwise train it. A diverged or failed run is recorded and
the others go on. Ctrl-C (or SIGTERM) checkpoints the current run and stops the command.

Under data parallelism (`parallel.py`) Lightning's DDP launcher starts the other processes by
running the same command again; each goes through the same runs in the same order and takes
the same decisions (from files only rank 0 changes, and only once all processes are training),
and only global rank 0 writes the run directory.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

from tzoo.components import ConfigError

from . import parallel, rundir, tracking
from .callbacks import EXACT, Interrupted, ProgressBar, StepCheckpoints, StopRequest
from .checkpoints import save_final
from .data import prepare_data
from .experiment import Experiment, RunSpec
from .measure import PeakMemory, Throughput
from .quiet import quiet_lightning
from .rundir import RunSummary
from .task import EVALUATION_STEP, Diverged
from .tasks import build_task, metric_names, supplies_prefix


class EarlyStop(Exception):
    """Raised by an extra callback to end a run on purpose (a sweep pruning a trial): the run is
    recorded with `status` (and can be resumed later), then the exception is re-raised so the
    caller that asked for the stop sees it."""

    status = "stopped"


@dataclass
class RunOutcome:
    spec: RunSpec
    run_dir: Path
    status: str
    note: str = ""


def run_experiment(experiment: Experiment, *, out: str | Path | None = None,
                   shard: tuple[int, int] = (0, 1), echo=print) -> list[RunOutcome]:
    """Run (or skip, reuse, resume) every planned run; return what happened to each.

    `shard=(i, n)` takes every n-th run starting at the i-th, so n processes (or machines
    sharing the runs folder) split one experiment without training any run twice.
    """
    quiet_lightning()
    index, count = shard
    runs = experiment.plan()[index::count]
    root = Path(out) if out else experiment.runs_dir
    for config in {id(r.config): r.config for r in runs}.values():
        parallel.check_machine(config)  # devices that are not here: bad input, before training
        prepare_data(config)  # data errors are bad input: fail before anything trains
    outcomes = []
    for position, spec in enumerate(runs, 1):
        run_dir = root / spec.run_id
        say = echo if parallel.writes_results(spec.config) else _silent
        say(f"[{position}/{len(runs)}] {spec.variant_name} · seed {spec.seed} · {run_dir}")
        outcome = run_one(spec, run_dir, experiment.name, runs_root=root.parent)
        say(f"        {outcome.status}{': ' + outcome.note if outcome.note else ''}")
        outcomes.append(outcome)
    return outcomes


def _silent(*args: object) -> None:
    """The echo of a process other than global rank 0: rank 0 says it once."""


def run_one(spec: RunSpec, run_dir: Path, experiment: str, *,
            runs_root: Path | None = None,
            callbacks: Sequence[L.Callback] = ()) -> RunOutcome:
    """Train one run (or skip / reuse / resume it). `callbacks` are added to the Trainer's own
    (a sweep's pruning callback); one may raise `EarlyStop` to end the run on purpose."""
    rundir.versions()  # pin the commit this process's code came from, before it trains
    summary = rundir.read_summary(run_dir)
    if summary and summary.status in rundir.FINAL_STATUSES:
        return RunOutcome(spec, run_dir, summary.status, "already done, skipped")
    reused = _reuse_elsewhere(spec, run_dir, experiment, runs_root)
    if reused:
        return reused
    return _train(spec, run_dir, experiment, callbacks)


def _reuse_elsewhere(spec: RunSpec, run_dir: Path, experiment: str,
                     runs_root: Path | None) -> RunOutcome | None:
    """The same run (same id suffix: same config and seed) completed by another experiment."""
    if runs_root is None or not runs_root.is_dir():
        return None
    digest = spec.run_id.rsplit("-", 1)[-1]
    for other in sorted(runs_root.glob(f"*/*-s{spec.seed}-{digest}")):
        if other.resolve() == run_dir.resolve():
            continue
        summary = rundir.read_summary(other)
        if summary and summary.completed and not parallel.writes_results(spec.config):
            return RunOutcome(spec, run_dir, "completed", f"reused from {other}")
        if summary and summary.completed:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            shutil.copytree(other, run_dir, ignore=shutil.ignore_patterns("*.ckpt"))
            summary.experiment, summary.run_id = experiment, spec.run_id
            summary.variant, summary.variant_name = spec.variant, spec.variant_name
            summary.base_variant, summary.reused_from = spec.is_base, str(other)
            rundir.write_summary(run_dir, summary)
            return RunOutcome(spec, run_dir, "completed", f"reused from {other}")
    return None


def _resume_point(run_dir: Path) -> tuple[Path | None, int]:
    """(the checkpoint to resume from, its step): of `last.ckpt` and an exact
    `interrupted.ckpt` (a stop at a step boundary), the one furthest on (an older stop, from
    before a resume, is behind the resume's `last.ckpt`). Decided from the checkpoints alone,
    which nothing changes before every process of the run is training, so all decide alike."""
    best: tuple[Path | None, int] = (None, 0)
    for path in (run_dir / rundir.LAST_CHECKPOINT, run_dir / rundir.INTERRUPTED_CHECKPOINT):
        if not path.is_file():
            continue
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        exact = state.get(EXACT, path.name == Path(rundir.LAST_CHECKPOINT).name)
        if exact and (best[0] is None or int(state["global_step"]) > best[1]):
            best = (path, int(state["global_step"]))
    return best


def _loggers(config: dict, run_dir: Path) -> list:
    loggers = tracking.make_loggers(config, run_dir)
    _keep_previous_metrics(loggers[0], run_dir / rundir.METRICS)
    return loggers


def _keep_previous_metrics(logger: CSVLogger, path: Path) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv when it starts; on resume the
    (truncated) rows logged before the checkpoint must stay, so put them back."""
    if not path.is_file():
        return
    kept = path.read_text()
    writer = logger.experiment  # creating the writer deletes the file
    path.write_text(kept)
    header = kept.splitlines()[0].split(",") if kept.strip() else []
    writer.metrics_keys = sorted(key for key in header if key)


def _train(spec: RunSpec, run_dir: Path, experiment: str,
           callbacks: Sequence[L.Callback] = ()) -> RunOutcome:
    config = spec.config
    train = config["train"]
    writer = parallel.writes_results(config)  # global rank 0 (or the only process)
    resume_from, start_step = _resume_point(run_dir)
    if writer and resume_from is not None:
        # Training rows up to step start_step - 1 were logged before the checkpoint; the
        # resumed run logs step start_step (its first training step) again. A validation at
        # start_step ran after the checkpoint and is not repeated by a resumed fit, so it
        # stays, unless training was done: then the final evaluation runs again.
        finished = start_step >= int(train["steps"])
        rundir.truncate_metrics(run_dir, train_before=start_step,
                                evaluations_through=start_step - 1 if finished else start_step)
    elif writer and run_dir.exists():
        # A run that never checkpointed: start clean rather than mixing two partial logs.
        for name in (rundir.METRICS, rundir.SUMMARY):
            (run_dir / name).unlink(missing_ok=True)
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_yaml(run_dir / rundir.CONFIG,
                          {**config, "seed": spec.seed, "run_id": spec.run_id})
    summary = RunSummary(
        experiment=experiment, run_id=spec.run_id, variant=spec.variant,
        variant_name=spec.variant_name, base_variant=spec.is_base, seed=spec.seed,
        reference=spec.reference, resumed_from_step=start_step,
        data_fingerprint=prepare_data(config).fingerprint,  # memoised: already loaded
        visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
    if writer:
        rundir.write_summary(run_dir, summary)
    if train["threads"]:
        torch.set_num_threads(int(train["threads"]))
    L.seed_everything(spec.seed, workers=True, verbose=False)
    started = time.perf_counter()
    throughput = Throughput()
    memory = PeakMemory()
    task = trainer = None
    try:
        built = build_task(config, seed=spec.seed, start_step=start_step)
        data, task, datamodule = built.data, built.task, built.datamodule
        summary.params = task.model.num_parameters()
        summary.tokenizer, summary.vocab_size = data.tokenizer.spec, data.tokenizer.vocab_size
        if writer:
            data.tokenizer.save(run_dir / rundir.TOKENIZER)
        if train["compile"]:
            task.model = torch.compile(task.model)
        stop = StopRequest()
        trainer = make_trainer(config, run_dir, throughput, callbacks, stop, writer=writer)
        tracking.log_hyperparameters(trainer.loggers, {**config, "seed": spec.seed,
                                                       "run_id": spec.run_id},
                                     metric_names(config, list(data.corpus.splits)))
        # A stop asked for during an evaluation outside fit is honoured after it.
        checkpoints = next(c for c in trainer.callbacks if isinstance(c, StepCheckpoints))
        with memory, _stop_on_signals(stop):
            trained = None  # a checkpoint of the finished training, if fit is skipped
            if start_step < int(train["steps"]):
                _call(trainer.fit, task, datamodule=datamodule,
                      ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
            elif resume_from is not None:  # stopped during the final evaluation: reload
                trained = str(resume_from)
            checkpoints.stop_if_requested(trainer)
            final = _call(trainer.validate, task, datamodule=datamodule, verbose=False,
                          ckpt_path=trained, weights_only=True)
            metrics = _floats(final[0] if final else {})
            checkpoints.stop_if_requested(trainer)
            if config["eval"]["test"]:
                tested = _call(trainer.test, task, datamodule=datamodule, verbose=False)
                for block in tested:
                    metrics.update(_floats(block))
        across_processes(trainer, throughput, memory, summary)
        metrics.update(dict.fromkeys(task.not_applicable(datamodule)))
        summary.task_fields = task.summary_fields(datamodule)
        state = _final_state(trainer, task)
        if writer:
            save_final(run_dir, task.model, task_supplies_prefix=supplies_prefix(config),
                       state_dict=state)
        summary.status, summary.metrics, summary.steps = "completed", metrics, int(train["steps"])
        tracking.log_final_metrics(trainer.loggers, metrics, summary.steps)
    except Interrupted:
        summary.status, summary.error = "interrupted", "stopped by the user; rerun to resume"
        raise
    except Diverged as error:
        summary.status, summary.error = "diverged", str(error)
        summary.diverged_at_step = error.step
    except EarlyStop as stop:
        summary.status, summary.error = stop.status, str(stop) or None
        raise
    except ConfigError:
        raise
    except Exception as error:  # one run failing must not stop the others
        if writer:
            (run_dir / rundir.ERROR_LOG).write_text(traceback.format_exc())
        summary.status, summary.error = "failed", f"{type(error).__name__}: {error}"
    finally:
        if trainer is not None:
            tracking.close(trainer.loggers, summary.status)
        summary.wall_s = round(time.perf_counter() - started, 2)
        summary.tokens_per_s, summary.peak_mem_mb = throughput.tokens_per_s, memory.megabytes
        summary.tokens_trained = throughput.tokens
        if memory.across is not None:
            summary.peak_mem_mb = memory.across
        summary.versions = rundir.versions()
        if writer:
            rundir.write_summary(run_dir, summary)
    return RunOutcome(spec, run_dir, summary.status, summary.error or "")


def across_processes(trainer: L.Trainer, throughput: Throughput, memory: PeakMemory,
                     summary: RunSummary) -> None:
    """Under data parallelism: tokens/s counts every process's tokens (over the slowest
    process's training time) and peak memory is the largest process's. A collective: every
    process calls it at the same point."""
    if trainer.world_size == 1:
        return
    summary.processes = trainer.world_size
    strategy = trainer.strategy
    mine = torch.tensor([throughput.tokens, throughput.seconds, memory.megabytes or 0.0],
                        dtype=torch.float64, device=strategy.root_device)
    gathered = strategy.all_gather(mine).reshape(-1, 3).cpu()
    throughput.tokens = int(gathered[:, 0].sum())
    throughput.seconds = float(gathered[:, 1].max())
    memory.across = float(gathered[:, 2].max()) if memory.megabytes is not None else None


def _final_state(trainer: L.Trainer, task: L.LightningModule) -> dict | None:
    """The model's full weights where a strategy shards them (FSDP gathers them: every process
    must ask); None where `task.model` holds them already."""
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(trainer.strategy, FSDPStrategy):
        return None
    state = trainer.strategy.lightning_module_state_dict()
    return {key.removeprefix("model."): value for key, value in state.items()
            if key.startswith("model.")}


def make_trainer(config: dict, run_dir: Path, throughput: Throughput,
                 extra: Sequence[L.Callback] = (), stop: StopRequest | None = None, *,
                 writer: bool = True) -> L.Trainer:
    """The Lightning Trainer `tzoo run` trains a resolved run configuration with: its resume
    points in `run_dir`, its loggers, the throughput clock, and `extra` callbacks (a sweep's
    pruning callback, a benchmark's clock). Its devices, strategy and gradient accumulation
    come from `train` (`parallel.trainer_arguments`); `writer`: whether this process writes
    the run directory (global rank 0)."""
    train, evaluation = config["train"], config["eval"]
    callbacks = [
        StepCheckpoints(run_dir / rundir.LAST_CHECKPOINT, run_dir / rundir.INTERRUPTED_CHECKPOINT,
                        every=int(train["checkpoint_every"]), stop=stop),
        throughput,
        *extra,
    ]
    progress = bool(train["progress"])
    if progress:
        callbacks.append(ProgressBar())
    steps = int(train["steps"])
    # Lightning counts the validation interval in batches, which are micro-batches when
    # gradients accumulate; train.val_every is in optimizer steps.
    every = min(int(train["val_every"]), steps) * int(train["accumulate"])
    return L.Trainer(
        max_steps=steps, max_epochs=-1, val_check_interval=every,
        check_val_every_n_epoch=None, limit_val_batches=int(evaluation["batches"]),
        num_sanity_val_steps=0, logger=_loggers(config, run_dir) if writer else False,
        callbacks=callbacks, gradient_clip_val=train["grad_clip"], precision=train["precision"],
        **parallel.trainer_arguments(train),
        # The data modules split batches and evaluation windows between processes themselves
        # (a DistributedSampler would pad evaluation with repeated windows).
        use_distributed_sampler=False,
        enable_progress_bar=progress and writer, enable_model_summary=False,
        enable_checkpointing=False,  # StepCheckpoints writes the resume points
        log_every_n_steps=int(train["log_every"]), default_root_dir=str(run_dir),
        deterministic=False,
    )


def _call(function, *args, **kwargs):
    """Call a Trainer entry point, turning Lightning's Ctrl-C exit into `Interrupted`."""
    try:
        return function(*args, **kwargs)
    except SystemExit as error:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignored it
        raise Interrupted() from error


@contextlib.contextmanager
def _stop_on_signals(stop: StopRequest):
    """Ctrl-C or SIGTERM (a scheduler's kill) asks the run to stop at the next step boundary,
    with a checkpoint it resumes from exactly; a second Ctrl-C stops at once (resuming then
    from `last.ckpt`). Signal handlers can only be set from the main thread; elsewhere the
    signals keep their defaults."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested = True
        print("\nstopping after the current step (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop.handler = handler
    try:
        yield
    finally:
        stop.handler = None
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)


def _floats(metrics: dict) -> dict[str, float | None]:
    """Logged results as numbers (NaN and infinities as None), without the step label."""
    out = {}
    for key, value in metrics.items():
        if key == EVALUATION_STEP:
            continue
        value = float(value.item() if hasattr(value, "item") else value)
        out[key] = value if math.isfinite(value) else None
    return out


def exit_code(outcomes: list[RunOutcome]) -> int:
    return 0 if all(o.status == "completed" for o in outcomes) else 1



