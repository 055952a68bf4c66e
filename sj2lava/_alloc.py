"""CPU training without page-fault storms: glibc's allocator told to keep freed memory for reuse.

Training a spiking net on the CPU allocates the same large tensors every iteration (a layer's
``[T, N, C, H, W]`` currents, spikes and saved states: 100 MB each at T = 32, N = 64 on a 28x28 map).
glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns
it on ``free``, so each iteration touches new pages: the kernel zeroes and maps them one 4 KiB page fault at
a time, and system time exceeded user time (measured: 580,000 faults an iteration, 2.8x slower). With mmap
off for the allocator (``M_MMAP_MAX = 0``) and trimming only above 1 GiB, freed blocks stay in the heap and
are reused. It is a process-wide setting, made once, on the first CPU training step of a CUBA neuron, and only
where glibc is the allocator; ``SJ2LAVA_KEEP_FREED_MEMORY=0`` leaves the allocator as it is. The price: memory
freed below 1 GiB of heap top stays with the process (as PyTorch's own GPU caching allocator keeps it).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import Optional

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_result: Optional[bool] = None  # the one attempt's outcome


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed memory (module docstring), once per process. True when it is set."""
    global _result
    if _result is None:
        _result = _set()
        if _result:
            logging.getLogger("sj2lava").info("CPU training: glibc keeps freed memory for reuse (no mmap per "
                                              "tensor); SJ2LAVA_KEEP_FREED_MEMORY=0 turns this off")
    return _result


def _set() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("SJ2LAVA_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
