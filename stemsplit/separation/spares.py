"""Arrays a finished segment gives back for the next one, so that their pages stay mapped.

On ONNX Runtime ``stemsplit separate`` maps every array of 4 MB or more on its own and unmaps it
when freed (``stemsplit/heap.py``: that keeps peak memory low). A segment's spectrum, the
network's input and its masks (14, 7 and 28 MB for a 10-s stereo segment of the default model)
were therefore mapped, zeroed by the kernel and unmapped again for every segment, from two
threads (each unmap interrupts the other core to flush its address cache). Kept here and handed
out again, they are faulted in once per song. Only arrays that never leave the engine are kept:
the stems it yields may be held by its caller, so they are always new.
"""
from __future__ import annotations

import numpy as np


class Spares:
    """At most ``keep`` spare arrays per name, all of the most recent shape and dtype."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._free: dict[str, list[np.ndarray]] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A spare array of ``shape`` and ``dtype`` (contents undefined), or a new one."""
        free = self._free.get(name, [])
        while free:
            array = free.pop()
            if array.shape == tuple(shape) and array.dtype == dtype:
                return array
        return np.empty(shape, dtype)

    def give(self, name: str, array: np.ndarray | None) -> None:
        """``array`` is no longer used by anyone: keep it for ``take``. Spares of another shape (a
        song's shorter last segment) are dropped, so the kept memory stays one segment's worth."""
        if array is None:
            return
        free = self._free.setdefault(name, [])
        if free and free[0].shape != array.shape:
            free.clear()
        if len(free) < self.keep:
            free.append(array)
