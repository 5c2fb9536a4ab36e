"""What every task shares: the model, the optimiser, divergence detection, per-layer gradient
norms, and the random state a checkpoint must carry for an exact resume."""

from __future__ import annotations

import random

import lightning as L
import torch
from torch import Tensor

from tzoo.components import build_model

from . import optim
from .batches import step_seed
from .rundir import TRAINING_LOSS

#: the key under which an evaluation logs the step it measured (see `Task.log_evaluation`)
EVALUATION_STEP = "step"


def step_generator(seed: int, step: int, salt: str) -> torch.Generator:
    """A generator that depends on (seed, step) only: random choices survive a resume."""
    return torch.Generator().manual_seed(step_seed(seed, step, salt))


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, value: float):
        self.step = step
        super().__init__(f"loss became {value} at step {step}")


class Task(L.LightningModule):
    """Base LightningModule: subclasses define `loss(batch)` and the evaluation."""

    def __init__(self, config: dict, model_config, *, seed: int = 0,
                 task_supplies_prefix: bool = False):
        super().__init__()
        self.config, self.seed = config, seed
        self.model = build_model(model_config, task_supplies_prefix=task_supplies_prefix)
        self.train_config = config["train"]
        self.log_every = int(config["train"]["log_every"])
        self.tokens_seen = 0
        self.step_metrics: dict[str, float] = {}  # the last logged step's loss and lr
        self.checkpoint_step = 0  # the optimizer steps of the checkpoint loaded, if any
        self._step_losses: list[Tensor] = []  # this optimizer step's micro-batch losses

    def attach(self, datamodule: L.LightningDataModule) -> None:
        """Learn from the data module what the evaluation will feed (built by `build_task`)."""

    def summary_fields(self, datamodule: L.LightningDataModule) -> dict:
        """Task-specific entries for the finished run's summary (`RunSummary.task_fields`)."""
        return {}

    def not_applicable(self, datamodule: L.LightningDataModule) -> dict[str, str]:
        """Metrics this run cannot measure, each with the reason (recorded as null)."""
        return {}

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets `_current_fx_name` around every hook call, ~46 times a training step;
        # nn.Module.__setattr__ checks each value against parameters, modules and buffers
        # (~2-4 µs) before storing it as a plain attribute, which is where a string ends up
        # anyway. Storing it directly saves ~0.1 ms a step, ~1 % of a small model's step.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ----------------------------------------------------------------------------- training
    def loss(self, batch: dict) -> tuple[Tensor, int]:
        """(mean loss, number of tokens it was computed on)."""
        raise NotImplementedError

    def batch_tokens(self, batch: dict) -> int:
        """Tokens the model processes for this batch (throughput counts these)."""
        raise NotImplementedError

    def evaluation_loss(self, batch: dict, batch_idx: int) -> tuple[Tensor, int]:
        """(mean loss, tokens counted) of one validation batch: what `val/loss` averages, also
        used outside training (reports evaluate trained models under interventions)."""
        raise NotImplementedError

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss, _ = self.loss(batch)
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # every process stops at the same step, or none does
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            raise Diverged(self.global_step, float(loss.detach()))
        self.tokens_seen += self.batch_tokens(batch)
        if self.global_step % self.log_every == 0:
            self._step_losses.append(loss.detach())
        return loss

    def configure_optimizers(self):
        return optim.configure(self.model, self.train_config)

    def layer_groups(self) -> list[torch.nn.Module]:
        """The blocks whose gradient norm is logged, in order (encoder first)."""
        model = self.model
        if hasattr(model, "stack"):
            return list(model.stack.blocks)
        return [*model.encoder.blocks, *model.decoder.blocks]

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.global_step % self.log_every:
            return
        # The step's loss is the mean over its micro-batches and processes: the loss of the
        # whole global batch, as one device computes it.
        if not self._step_losses:
            return
        loss = torch.stack(self._step_losses).mean()
        self._step_losses = []
        if self.trainer.world_size > 1:
            loss = self.trainer.strategy.reduce(loss, reduce_op="mean")
        self.step_metrics = {TRAINING_LOSS: float(loss),
                             "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        self.write_step_metrics({**self.step_metrics, **self.gradient_norms()})

    def gradient_norms(self) -> dict[str, float]:
        """Gradient norm per layer, before clipping: the pre-LN vs post-LN story in one plot."""
        norms = {}
        for i, block in enumerate(self.layer_groups()):
            grads = [p.grad for p in block.parameters() if p.grad is not None]
            if grads:
                norms[f"grad_norm/layer_{i}"] = float(torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        return norms

    def write_step_metrics(self, metrics: dict[str, float]) -> None:
        """Training-step scalars go straight to the loggers, labelled with the step they
        describe. `self.log` would route each through Lightning's result collection (about
        0.5 ms per value on a CPU, a few per cent of a small model's step) only to hand the
        same numbers to the same loggers."""
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    def log_evaluation(self, results: dict, **options) -> None:
        """Log a validation's or test's results (`self.log_dict`, with `options`), labelled
        with the training step they measured: `global_step`, the optimizer steps taken, as a
        training row's label is. Left to itself, Lightning labels an evaluation inside `fit`
        with its count of finished batches, which lags one behind: the validation after 30
        steps would read 29. A logged "step" is Lightning's documented way to set the label
        (`LoggerConnector.log_metrics` pops it and logs the rest at that step); the runner
        drops it from the results it records."""
        self.log_dict(results, **options)
        self.log(EVALUATION_STEP, float(self.trained_steps), add_dataloader_idx=False)

    @property
    def trained_steps(self) -> int:
        """Optimizer steps behind the current weights. `validate` from a checkpoint (a run
        stopped during its final evaluation) loads the weights but leaves the trainer's step
        count at 0, so the checkpoint's own count is taken then."""
        return max(int(self.global_step), self.checkpoint_step)

    # ----------------------------------------------------------------------------- resume
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tzoo_rng"] = {
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0],
            "tokens_seen": self.tokens_seen,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.checkpoint_step = int(checkpoint.get("global_step", 0))
        state = checkpoint.get("tzoo_rng")
        if state:
            torch.set_rng_state(state["torch"])
            random.setstate((state["python_version"], tuple(state["python"]), None))
            self.tokens_seen = int(state["tokens_seen"])
