"""Margin cross-fade segmenting (``separate.crossfade: margin``, the default): the pieces the engine's
stream is made of.

``segments`` cuts a stream of (C, n) blocks into segments of ``segment`` samples that overlap by
``overlap``; ``crossfade_window`` gives each its weights (zero margins of overlap / 4 where the
STFT and the model see padding, then linear ramps; see engine.py's module doc). ``StartedInput``
is an input whose first segment is already in the network (``Engine.start_input``), which lets a
batch go from one file to the next without the network waiting. numpy only.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np


def crossfade_window(length: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """(length,) float64 weights: zero margins and linear ramps at the inner edges (see engine.py)."""
    w = np.ones(length, dtype=np.float64)
    if overlap <= 0:
        return w
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    ramp = (np.arange(ramp_len, dtype=np.float64) + 0.5) / ramp_len
    rise = np.concatenate([np.zeros(margin), ramp, np.ones(max(overlap - margin - ramp_len, 0))])[:overlap]
    if not first:
        n = min(overlap, length)
        w[:n] = rise[:n]
    if not last:
        w[-overlap:] = w[-overlap:] * rise[::-1]
    return w


def segments(blocks: Iterable[np.ndarray], channels: int, segment: int,
             overlap: int) -> Iterator[tuple[np.ndarray, bool, bool]]:
    """(chunk (C, n <= segment), first, last) for a stream of (C, n) input blocks, in order."""
    stride = segment - overlap
    pending = np.zeros((channels, 0), np.float32)
    first, exhausted = True, False
    source = iter(blocks)
    while True:
        # a segment is final only when no sample follows it, so look one sample ahead
        while not exhausted and pending.shape[-1] <= segment:
            try:
                pending = np.concatenate([pending, np.asarray(next(source), dtype=np.float32)], axis=-1)
            except StopIteration:
                exhausted = True
        if pending.shape[-1] == 0:
            return
        last = exhausted and pending.shape[-1] <= segment
        yield pending[:, :segment], first, last
        if last:
            return
        pending = pending[:, stride:]
        first = False


def cancel(ahead: deque) -> None:
    """Cancel the network calls of started segments that will not be finished (a running one ends unread).
    ``ahead`` holds (samples, first, last, jobs), each job with a Future ``result``."""
    for *_, jobs in ahead:
        for job in jobs:
            job.result.cancel()
    ahead.clear()


@dataclass
class StartedInput:
    """An input whose first segment is already in the network (``Engine.start_input``): ``Engine.stream``
    takes it in place of its blocks. ``close()`` drops one that will not be read."""
    blocks: Iterable[np.ndarray]  # the input (triangle segmenting: not started) ...
    segments: Iterator | None = None  # ... or its segments after those in ``ahead``
    ahead: deque = field(default_factory=deque)  # (samples, first, last, jobs) of the started segments

    def close(self) -> None:
        cancel(self.ahead)
        if self.segments is not None:
            self.segments.close()
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()
