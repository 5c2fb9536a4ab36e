"""How a run spreads over devices: Lightning's strategies, the rules they must satisfy, and each
process's share of a step's batch.

`data.batch_size` is the global batch of one optimizer step, whatever the devices: the batch of
step s is drawn from (seed, s) as on one device, and with W processes (`train.devices` ×
`train.num_nodes`) and A accumulation steps (`train.accumulate`) process r trains, in its
micro-batch m, on rows [(r·A + m)·B/(W·A), (r·A + m + 1)·B/(W·A)) of it. The W·A slices together
are the one-device batch, so an experiment means the same optimisation on 1 or N devices (and
has the same run id: these keys are not part of a run's identity).

Before the Trainer exists a process knows its rank only from the launchers' environment
(Lightning's LOCAL_RANK/NODE_RANK, torchrun's RANK, SLURM's SLURM_PROCID); the runner lets only
global rank 0 write the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tzoo.components.errors import ConfigError

#: `train.strategy`, spelled as Lightning spells them
STRATEGIES = ("auto", "ddp", "fsdp", "single_device")
#: strategies that run one process per device
MULTI_DEVICE = ("auto", "ddp", "fsdp")
GPU_ACCELERATORS = ("gpu", "cuda")


@dataclass(frozen=True)
class Share:
    """One process's part of every step's batch: its rank among `world` processes, and the
    number of micro-batches (`accumulate`) it splits its part into."""

    rank: int = 0
    world: int = 1
    accumulate: int = 1

    @property
    def parts(self) -> int:
        return self.world * self.accumulate

    def check(self, batch_size: int) -> None:
        check_divisible(batch_size, self.world, self.accumulate)

    def rows(self, batch_size: int, micro: int) -> slice:
        """The rows of the global batch this process trains on in micro-batch `micro`."""
        size = batch_size // self.parts
        start = (self.rank * self.accumulate + micro) * size
        return slice(start, start + size)


#: the whole of every batch: one process, no accumulation
WHOLE = Share()


def check_divisible(batch_size: int, world: int, accumulate: int) -> None:
    parts = world * accumulate
    if batch_size % parts:
        lower = batch_size // parts * parts
        options = " or ".join(str(n) for n in (lower, lower + parts) if n > 0)
        raise ConfigError(
            f"the global batch of one optimizer step ({batch_size}) must split evenly over "
            f"{world} process(es) x {accumulate} accumulation step(s) = {parts} parts; "
            f"use {options}", key="data.batch_size")


def static_world(train: dict[str, Any]) -> int | None:
    """Processes a run trains with, when the configuration alone says (None for 'auto')."""
    devices = train["devices"]
    return None if devices == "auto" else int(devices) * int(train["num_nodes"])


def check_parallel(config: dict[str, Any]) -> None:
    """The rules the configuration alone decides (run before anything trains)."""
    train = config["train"]
    devices, strategy = train["devices"], train["strategy"]
    if (isinstance(devices, str) and devices != "auto") or (
            isinstance(devices, int) and devices < 1):
        raise ConfigError(f"expected a number of devices >= 1 or 'auto', got {devices!r}",
                          key="train.devices")
    world = static_world(train)
    several = world is None or world > 1
    if strategy == "single_device" and several:
        raise ConfigError(
            f"the single_device strategy trains on one device, but train.devices is "
            f"{devices!r} and train.num_nodes {train['num_nodes']}: use strategy ddp (or auto) "
            "to train on several", key="train.strategy")
    if train["accelerator"] == "mps" and devices not in (1, "auto"):
        raise ConfigError(f"Apple's MPS is one device, got devices {devices!r}",
                          key="train.devices")
    if strategy == "fsdp" and train["accelerator"] not in ("auto", *GPU_ACCELERATORS):
        raise ConfigError(f"Lightning's FSDP needs CUDA GPUs, got accelerator "
                          f"{train['accelerator']!r}: use strategy ddp", key="train.strategy")
    check_divisible(int(config["data"]["batch_size"]), world or 1, int(train["accumulate"]))


def check_machine(config: dict[str, Any], gpus: int | None = None) -> None:
    """The rules this machine decides: the devices asked for exist here. `gpus`: the CUDA
    devices visible to this process (default: torch's count)."""
    train = config["train"]
    accelerator, devices = train["accelerator"], train["devices"]
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    if accelerator in GPU_ACCELERATORS:
        if gpus == 0:
            raise ConfigError(f"accelerator {accelerator!r} but this machine has no CUDA GPU"
                              f"{seen}; use accelerator: cpu (or auto)", key="train.accelerator")
        if devices != "auto" and int(devices) > gpus:
            raise ConfigError(f"{devices} devices asked for, but this machine has {gpus} "
                              f"CUDA GPU(s){seen}", key="train.devices")
    if accelerator == "auto" and gpus == 0 and devices not in (1, "auto"):
        raise ConfigError(
            f"accelerator 'auto' finds no GPU here{seen}, so devices {devices!r} would start "
            f"{devices} processes on the CPU; say accelerator: cpu if that is what you want",
            key="train.devices")
    if train["strategy"] == "fsdp" and gpus == 0:
        raise ConfigError(f"Lightning's FSDP needs CUDA GPUs and this machine has none{seen}",
                          key="train.strategy")


def trainer_arguments(train: dict[str, Any]) -> dict[str, Any]:
    """The Trainer's device arguments for a run's `train` section."""
    return {"accelerator": train["accelerator"], "devices": train["devices"],
            "num_nodes": int(train["num_nodes"]), "strategy": train["strategy"],
            "accumulate_grad_batches": int(train["accumulate"])}


#: the launchers' rank variables: Lightning's subprocess launcher (LOCAL_RANK, NODE_RANK),
#: torchrun (RANK) and SLURM's srun (SLURM_PROCID)
RANK_VARIABLES = ("RANK", "NODE_RANK", "LOCAL_RANK", "SLURM_PROCID")


def writes_results(config: dict[str, Any]) -> bool:
    """Whether this process writes the run directory: always for one process; for several,
    only global rank 0, told by the launchers' environment before the Trainer exists."""
    if static_world(config["train"]) == 1:
        return True
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "0")
        if value.isdigit() and int(value) != 0:
            return False
    return True


def share_of(trainer: Any) -> Share:
    """A data module's share of the batches, from the Trainer it is attached to (a whole
    share when there is none: benchmarks, tests)."""
    if trainer is None:
        return WHOLE
    return Share(int(trainer.global_rank), int(trainer.world_size),
                 int(trainer.accumulate_grad_batches))
