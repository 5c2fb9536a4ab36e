"""AdamW with linear warm-up and a decay schedule (cosine by default), as in nanoGPT/GPT-3."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (linear and embedding weights); leave gains, biases and scalars alone."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": other, "weight_decay": 0.0}]


def lr_factor(schedule: str, warmup: int, steps: int, floor: float) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at each step: linear warm-up over `warmup` steps,
    then `cosine` or `linear` decay to `floor` at the last step, or `constant`."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant" or steps <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        if schedule == "linear":
            return floor + (1.0 - floor) * (1.0 - progress)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def adamw(groups: list[dict], **options) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where PyTorch has one for the parameters' device (CPU and
    CUDA since torch 2.4). The default implementation loops over parameters in Python: on the
    quickstart model that loop is 0.77 ms of a ~13 ms step, the fused step 0.22 ms (0.8 MB of
    parameters: 1.8 vs 0.66 ms). Same update rule; elsewhere, the default implementation."""
    try:
        return torch.optim.AdamW(groups, fused=True, **options)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(groups, **options)


def configure(model: nn.Module, train: dict) -> dict:
    """What `LightningModule.configure_optimizers` returns for the `train:` section."""
    lr = float(train["lr"])
    floor = (train["min_lr"] if train["min_lr"] is not None else lr / 10) / lr if lr else 0.0
    optimizer = adamw(parameter_groups(model, float(train["weight_decay"])), lr=lr,
                      betas=tuple(float(b) for b in train["betas"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(train["schedule"], int(train["warmup"]), int(train["steps"]), floor)
    )
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
