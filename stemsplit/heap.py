"""Keep a long separation's heap from growing: map large allocations instead of carving the heap.

The separation engine allocates and frees arrays of 3-30 MB for every segment (spectra, the
network's output, stem blocks) from two threads. glibc's malloc raises its mmap threshold to the
size of each large block freed (up to 32 MB), so after the first segment those arrays come from
the heap, whose freed holes it keeps: about 70 MB more peak RSS on a 3-minute song (measured with
``stemsplit separate``, 490 -> 411 MB), for no speed. A fixed 4 MB threshold keeps them mapped
and returned to the system when freed. It is a process-wide setting, so only the CLI (which owns
its process) calls ``map_large_allocations``; the Python API leaves the caller's allocator alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD_BYTES = 4 << 20


def map_large_allocations(threshold: int = THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False (and nothing changed) elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1
