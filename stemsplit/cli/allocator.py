"""Keep glibc from handing large buffers back to the kernel after every segment.

Separation allocates and frees the same tens-of-megabyte spectrogram buffers for every
segment. By default glibc serves those with mmap and unmaps them on free, so each segment
pays for fresh zeroed pages: on a 2-core machine that was ~40% of the wall time, mostly as
system time. Raising the mmap and trim thresholds lets the heap reuse those pages. The heap
stays bounded because every segment needs the same sizes (see the 30-minute RSS benchmark).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 1 << 30


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds; True when applied. A no-op off glibc or when the
    user set MALLOC_* variables themselves."""
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES))
