"""Peak memory of a training step, on the CPU, measured by the operating system.

PyTorch's CPU allocator keeps no statistics, so the kernel's resident-set high-water mark is
used: free what can be freed (garbage collection, then `malloc_trim` so glibc hands freed heap
pages back instead of keeping them resident for reuse), reset the high-water mark
(`/proc/self/clear_refs`), run the step, and read `VmHWM` minus the resident size just before.
That is the step's activations, gradients and temporaries. The step runs after warm-up, so the
optimizer state already exists; it is added from the tensors themselves (parameters + AdamW's
two moments), which is exact. On a GPU the allocator's own peak is used instead.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

import torch

_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: freed pages may stay resident and the peak reads low
    _LIBC = None


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _release() -> None:
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def step_peak_bytes(step: Callable[[], object]) -> int | None:
    """Extra resident bytes at the peak of one call of `step` (None where it cannot be read)."""
    if torch.cuda.is_available():
        _release()
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    _release()
    before = status_kib("VmRSS")
    if before is None or not _reset_high_water_mark():
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
