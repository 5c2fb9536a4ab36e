"""A trained run's validation loss, outside training: the batches and the loss `val/loss`
averages, for evaluating a model under interventions (knocked-out heads, skipped blocks).

The task and data are built from the run's own configuration (`build_task`), so the tokenizer,
the objective (masked positions, prefix lengths, a translator's teacher forcing) and the
batches are those of training; only the model is the trained one handed in.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from tzoo.components.errors import ConfigError
from tzoo.components.masks import CausalMask

from .tasks import build_task


@contextmanager
def run_threads(config: dict[str, Any]) -> Iterator[None]:
    """Torch's thread count set to the run's `train.threads` inside the block (left alone when
    the run set none), restored after: a small model evaluated as it was trained. On a busy
    machine a second thread on tiny matrices can cost ten times more than it gains."""
    wanted = ((config or {}).get("train") or {}).get("threads")
    previous = torch.get_num_threads()
    if wanted:
        torch.set_num_threads(int(wanted))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Validation:
    """The first `max_batches` validation batches of a run (all when None), at the training
    context, and the model's loss on them."""

    def __init__(self, config: dict[str, Any], model: nn.Module, *,
                 max_batches: int | None = None):
        # Building the task initialises a throwaway model from the global generator: leave the
        # caller's random state as it was.
        with torch.random.fork_rng(devices=[]):
            built = build_task(config, seed=int(config.get("seed") or 0))
        self.task = built.task
        self.task.model = model  # the trained model replaces the freshly built one
        self.task.eval()
        self.config = config
        loader = self._main_loader(built.datamodule)
        self.batches = list(itertools.islice(loader, max_batches))
        if not self.batches:
            raise ConfigError("the run's validation split yields no batch to evaluate on")

    @staticmethod
    def _main_loader(datamodule: Any):
        loaders = datamodule.val_dataloader()
        if not isinstance(loaders, list):
            return loaders
        labels = [label for label, _ in getattr(datamodule, "eval_contexts", [])]
        if not loaders:
            raise ConfigError("the run has no validation context it can evaluate")
        return loaders[labels.index("1x")] if "1x" in labels else loaders[0]

    @property
    def model(self) -> nn.Module:
        return self.task.model

    @torch.no_grad()
    def loss(self) -> float:
        """Token-weighted mean loss over the batches, under whatever hooks are active."""
        total, counted = 0.0, 0
        for index, batch in enumerate(self.batches):
            loss, n = self.task.evaluation_loss(batch, index)
            total += float(loss) * n
            counted += n
        return total / counted if counted else float("nan")

    @property
    def splits_repeats(self) -> bool:
        """Whether the run splits its validation loss into the repeated and the fresh tokens
        (`eval.repeat_loss`: data whose documents repeat themselves, such as the induction
        task's)."""
        return bool((self.config.get("eval") or {}).get("repeat_loss"))

    @torch.no_grad()
    def halves(self) -> tuple[float, float]:
        """(loss on the repeated tokens, loss on the fresh ones) over the batches, the split of
        `val/loss_repeat` and `val/loss_fresh`, under whatever hooks are active; NaN for a part
        with no token. Only for a run that `splits_repeats`."""
        sums, counts = [0.0, 0.0], [0, 0]
        for batch in self.batches:
            losses, seen = self.task.repeat_split(batch["tokens"])
            for part, where in enumerate((seen, ~seen)):
                sums[part] += float(losses[where].double().sum())
                counts[part] += int(where.sum())
        repeat, fresh = (total / n if n else float("nan")
                         for total, n in zip(sums, counts, strict=True))
        return repeat, fresh

    def causal_windows(self) -> Tensor | None:
        """The batches' token windows (windows, length + 1) when the run is a causal language
        model, the only kind whose next-token loss on a span is comparable between two inputs
        (activation patching); None otherwise."""
        task = self.config["task"]
        causal = isinstance(getattr(self.model, "mask", None), CausalMask)
        if task["name"] != "lm" or task.get("objective") != "causal" or not causal:
            return None
        return torch.cat([batch["tokens"] for batch in self.batches])
