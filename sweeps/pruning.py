"""Pruning on the validation metric, reported by training step.

optuna-integration's PyTorchLightningPruningCallback reports by epoch; our runs are step-based
(one endless epoch with `val_check_interval`), so every report would land on step 0 and all
but the first be dropped (optuna issue 2932). This callback reports `trainer.global_step`.

Lightning calls `on_exception` on every callback and re-raises an exception raised inside a
hook, so raising `Pruned` here checkpoints the run (StepCheckpoints) and reaches the
runner, which records the run as "pruned" and re-raises it to the sweep.
"""

from __future__ import annotations

import math

import lightning as L
import optuna
from lightning.pytorch.trainer.states import TrainerFn

from tzoo.recipes.runner import EarlyStop


class Pruned(EarlyStop, optuna.TrialPruned):
    """The pruner stopped this trial: a run status for the runner, a TrialPruned for Optuna."""

    status = "pruned"


class PruneOnValidation(L.Callback):
    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only validations inside fit: the runner's final `validate` repeats the last step.
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            return  # the divergence check reports this better than a pruned NaN would
        step = int(trainer.global_step)
        self.trial.report(value, step=step)
        # At the last step there is nothing left to save: the trial is complete, and counting
        # it as pruned would hide a finished result from the sampler.
        finished = trainer.max_steps is not None and 0 < trainer.max_steps <= step
        if not finished and self.trial.should_prune():
            raise Pruned(f"pruned at step {step}: {self.metric} = {value:.4g}")
