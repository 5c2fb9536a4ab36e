"""The process's resident memory as the Linux kernel counts it: the CPU side of peak memory.

PyTorch's CPU allocator keeps no statistics, so peaks come from the kernel: free what can be
freed (garbage collection, then glibc's `malloc_trim`, so freed heap pages go back to the
kernel instead of staying resident for reuse, which would hide the next measurement's growth),
reset the resident-set high-water mark (`/proc/self/clear_refs`), run, and read `VmHWM`.
"""

from __future__ import annotations

import ctypes
import gc

_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: freed pages may stay resident and peaks read low
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


def release_freed_memory() -> None:
    """Hand memory that is free but still resident back to the kernel."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def reset_high_water_mark() -> bool:
    """Set VmHWM to the current resident size; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False
