"""glibc's heap settings per command: one table, applied once when the ``stemsplit`` process starts.

Two settings of glibc's malloc decide how the commands' large arrays come and go:

- the trim threshold: free memory at the top of the heap above it goes back to the kernel. At
  1 GiB the heap keeps the pages it has, so arrays freed and allocated again at the same sizes
  reuse them instead of faulting in fresh zeroed pages (separation paid ~40 % of its wall time
  for those on a 2-core machine, mostly system time: a 3-minute song took 10.6 s, then 6.0 s).
- the mmap threshold: allocations above it are mapped on their own and unmapped on free. By
  default glibc raises it to the size of each large block freed (up to 32 MB), after which
  those blocks are carved from the heap, whose freed holes it keeps.
  ``separate`` on ONNX Runtime allocates and frees arrays of 3-30 MB for every segment from
  two threads; fixed at 4 MB, they stay mapped and go back when freed: a 3-minute song with the
  default model peaks at ~340 MB of RSS instead of ~410 MB, at the same speed. A torch model's
  much larger activations (a Demucs segment: hundreds of MB) would then be mapped and faulted in
  afresh on every forward pass: a 30-s song through HTDemucs took 27.8 s (21 s of it system time)
  instead of 16.4 s. So ``separate`` on torch, like the other commands, keeps its arrays on the
  heap (threshold 1 GiB) and reuses their pages, and in one arena, so that the pages one thread
  freed serve the next segment on another: 14-15 s and 1.84-1.88 GB instead of 2.14 GB.

The CLI applies the command's policy when the process starts, and ``separate`` applies its
runtime's row again once the model is resolved (before any audio is read).

These are process-wide settings, so only the command line (which owns its process) applies
them; the Python API leaves its caller's allocator alone. A user who sets glibc's own
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_ARENA_MAX`` keeps them: stemsplit then changes
nothing. Off glibc (macOS, Windows, musl) this is a no-op.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX")


@dataclass(frozen=True)
class HeapPolicy:
    mmap_threshold: int  # bytes: larger allocations are mapped on their own
    trim_threshold: int  # bytes: free memory above it at the heap's top goes back to the kernel
    arena_max: int | None = None  # at most this many malloc arenas (None: glibc's default, 8 per core)


KEEP_PAGES = HeapPolicy(mmap_threshold=1 << 30, trim_threshold=1 << 30)
MAP_LARGE_ARRAYS = HeapPolicy(mmap_threshold=4 << 20, trim_threshold=1 << 30)
# one arena: the network thread's freed activations serve the next segment wherever it runs,
# instead of each thread keeping its own (HTDemucs, 30-s song: 2.14 GB -> 1.84-1.88 GB, 14-15 s)
KEEP_PAGES_ONE_ARENA = HeapPolicy(mmap_threshold=1 << 30, trim_threshold=1 << 30, arena_max=1)

# (command, runtime) -> policy; runtime None: not resolved yet (separate's usual runtime is ONNX)
POLICIES = {("separate", None): MAP_LARGE_ARRAYS, ("separate", "onnx"): MAP_LARGE_ARRAYS,
            ("separate", "torch"): KEEP_PAGES_ONE_ARENA}
DEFAULT_POLICY = KEEP_PAGES  # every other command


def policy_for(command: str | None, runtime: str | None = None) -> HeapPolicy:
    """The heap policy of a ``stemsplit`` subcommand on a runtime (unknown: the default)."""
    return POLICIES.get((command or "", runtime), DEFAULT_POLICY)


def _mallopt():
    """glibc's ``mallopt``, or None where there is none (other platforms, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def apply_heap_policy(command: str | None, runtime: str | None = None) -> bool:
    """Set this process's heap up for ``command`` on ``runtime`` (see the table above); True when
    applied, False (and nothing changed) off glibc or where the user set MALLOC_* variables."""
    if any(name in os.environ for name in _USER_VARIABLES):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    policy = policy_for(command, runtime)
    applied = mallopt(_M_MMAP_THRESHOLD, policy.mmap_threshold) == 1 and \
        mallopt(_M_TRIM_THRESHOLD, policy.trim_threshold) == 1
    if policy.arena_max is not None:
        applied = mallopt(_M_ARENA_MAX, policy.arena_max) == 1 and applied
    return applied
