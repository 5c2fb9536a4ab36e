"""Peak memory of a training step, on the CPU, measured by the operating system.

PyTorch's CPU allocator keeps no statistics, so the kernel's resident-set high-water mark is
used (`recipes/resident.py`): free what can be freed, reset the high-water mark, run the step,
and read `VmHWM` minus the resident size just before.
That is the step's activations, gradients and temporaries. The step runs after warm-up, so the
optimizer state already exists; it is added from the tensors themselves (parameters + AdamW's
two moments), which is exact. On a GPU the allocator's own peak is used instead.
"""

from __future__ import annotations

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
    """Bytes held between steps: parameters and the optimizer's state tensors."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if optimizer is not None:
        for state in optimizer.state.values():
            total += sum(v.numel() * v.element_size() for v in state.values()
                         if isinstance(v, torch.Tensor))
    return total
