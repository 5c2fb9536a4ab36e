"""Silence the framework chatter that says nothing about the run (tips, device banners)."""

from __future__ import annotations

import logging
import warnings

_NOISE = (
    r".*does not have many workers.*",
    r".*IterableDataset.*has `__len__` defined.*",
    r".*was called without a model.*",
    r".*there is no last checkpoint available.*",
    r".*exists and is not empty.*",
    r".*LeafSpec.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    # Batches are a pure function of (seed, step), so resuming mid-epoch is exact here.
    r".*resuming from a checkpoint that ended before the epoch ended.*",
    # Epoch-level values the tasks log under data parallelism are already reduced across
    # processes (torchmetrics sums the weighted means' parts), so the same on every process.
    r".*when logging on epoch level in distributed setting.*",
    r".*torch.distributed.nn.functional.all_gather is deprecated.*",
)


def quiet_lightning() -> None:
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
