"""What every task shares: the model, the optimiser, divergence detection, per-layer gradient
norms, and the random state a checkpoint must carry for an exact resume."""

from __future__ import annotations

import random

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from tzoo.components import build_model

from . import optim
from .batches import step_seed


def step_generator(seed: int, step: int, salt: str) -> torch.Generator:
    """A generator that depends on (seed, step) only: random choices survive a resume."""
    return torch.Generator().manual_seed(step_seed(seed, step, salt))


class _WholeRun(IterableDataset):
    """A step-indexed training dataset that reports the whole run's length.

    On resume Lightning restores the batch index within the epoch (= the step, as a run is one
    epoch) and ends the epoch at len(loader); the dataset yields only the steps from
    `start_step` on, so reporting that shorter length ended the epoch early and replayed the
    batches from `start_step` in a second epoch."""

    def __init__(self, dataset: IterableDataset, total_steps: int):
        self.dataset, self.total_steps = dataset, total_steps

    def __iter__(self):
        return iter(self.dataset)

    def __len__(self) -> int:
        return self.total_steps


def train_loader(dataset: IterableDataset, total_steps: int) -> DataLoader:
    """The loader of a step-indexed training dataset (`TrainWindows`, `TrainPairs`)."""
    return DataLoader(_WholeRun(dataset, total_steps), batch_size=None, num_workers=0)


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
        if not torch.isfinite(loss):
            raise Diverged(self.global_step, float(loss.detach()))
        self.tokens_seen += self.batch_tokens(batch)
        if self.global_step % self.log_every == 0:
            self.step_metrics = {"train/loss": float(loss.detach()),
                                 "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
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

    # ----------------------------------------------------------------------------- resume
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tzoo_rng"] = {
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0],
            "tokens_seen": self.tokens_seen,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("tzoo_rng")
        if state:
            torch.set_rng_state(state["torch"])
            random.setstate((state["python_version"], tuple(state["python"]), None))
            self.tokens_seen = int(state["tokens_seen"])
