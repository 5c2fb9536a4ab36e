"""Peak memory of a training step, on the CPU, measured by the operating system.

PyTorch's CPU allocator keeps no statistics, so the kernel's resident-set high-water mark is
used (`recipes/resident.py`): free what can be freed, reset the high-water mark, run the step,
and read `VmHWM` minus the resident size just before.
That is the step's activations, gradients and temporaries. The step runs after warm-up, so the
optimizer state already exists; it is added from the tensors themselves (parameters + AdamW's
two moments), which is exact. On a GPU the allocator's own peak is used instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from tzoo.recipes.resident import release_freed_memory, reset_high_water_mark, status_kib


def step_peak_bytes(step: Callable[[], object]) -> int | None:
    """Extra resident bytes at the peak of one call of `step` (None where it cannot be read)."""
    if torch.cuda.is_available():
        release_freed_memory()
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    release_freed_memory()
    before = status_kib("VmRSS")
    if before is None or not reset_high_water_mark():
        return None
    step()
    peak = status_kib("VmHWM")
    return None if peak is None else max(0, peak - before) * 1024


def tensor_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes held between steps: parameters, buffers, the tensors modules cache for themselves
    (rotary's table, ALiBi's bias block, relative buckets: built in warm-up, so a step's
    high-water mark would not see them) and the optimizer's state tensors."""
    seen: set[int] = set()
    total = 0

    def add(value: object) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(value, (tuple, list)):
            for item in value:
                add(item)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for item in dataclasses.fields(value):
                add(getattr(value, item.name))

    for tensor in (*model.parameters(), *model.buffers()):
        add(tensor)
    for module in model.modules():
        for name, value in vars(module).items():
            if name not in ("_parameters", "_buffers", "_modules"):  # those are counted above
                add(value)
    if optimizer is not None:
        for state in optimizer.state.values():
            for value in state.values():
                add(value)
    return total
