"""Linear-fade segmenting (``separate.crossfade: linear_fade``): the MSST framework's ``demix``, streamed.

The RoFormer checkpoints were published with this inference, and their attention spans the whole
segment, so neighbouring segments disagree where they overlap: only the same cutting and blending
gives the publisher's stems.

- The signal is reflect-padded by ``border = segment - stride`` samples at both ends (only when it
  is longer than ``2 * border``), and those samples are cut from the output again.
- Segments of ``segment`` samples start every ``stride`` samples of the padded signal while inside
  it. One cut short by the end is padded back to ``segment`` samples by reflection when more than
  half of it is signal, else by zeros; its output is trimmed back.
- Each output is weighted by a window that rises linearly from 0 over ``segment // 10`` samples,
  stays at 1 and falls back to 0 over the last ``segment // 10`` (the first segment has no rise,
  the last no fall); the weighted outputs are summed and divided by the summed weights (0 where
  no weight fell).

The blending is that of MSST's ``demix`` with one segment per batch: with a larger inference
batch, MSST also drops the fall of every segment of the last batch, so its stems then depend on
its batch size. The stream holds about one segment of input and of output.

Shape letters: S stems, C channels, n samples. numpy only.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np


def fade_window(segment: int, first: bool, last: bool) -> np.ndarray:
    """(segment,) float32: linear rise and fall over ``segment // 10`` samples each, 1 between."""
    fade = segment // 10
    weight = np.ones(segment, np.float32)
    if fade > 0:
        if not first:
            weight[:fade] = np.linspace(0, 1, fade, dtype=np.float32)
        if not last:
            weight[-fade:] = np.linspace(1, 0, fade, dtype=np.float32)
    return weight


def count_segments(length: int, segment: int, stride: int) -> int:
    """How many segments ``one_pass`` runs the network on for ``length`` samples."""
    border = segment - stride
    total = length + 2 * border if length > 2 * border and border > 0 else length
    return -(-total // stride) if total > 0 else 0


def _padded(blocks: Iterable[np.ndarray], channels: int, border: int) -> Iterator[np.ndarray]:
    """The (C, n) blocks reflect-padded by ``border`` at both ends when the signal is longer than
    ``2 * border``; the first block says so by its extra length, so the first item is a bool."""
    source = (np.asarray(b, dtype=np.float32) for b in blocks)
    held = np.zeros((channels, 0), np.float32)
    exhausted = False
    while not exhausted and held.shape[-1] <= 2 * border:  # the decision needs 2 border + 1 samples
        block = next(source, None)
        if block is None:
            exhausted = True
        else:
            held = np.concatenate([held, block], axis=-1)
    pad = border > 0 and held.shape[-1] > 2 * border
    yield pad
    if not pad:
        yield held
        yield from source
        return
    yield held[:, border:0:-1]
    for block in source:  # the last border + 1 samples are held back for the reflection at the end
        held = np.concatenate([held, block], axis=-1)
        if held.shape[-1] > border + 1:
            yield held[:, :-(border + 1)]
            held = held[:, -(border + 1):]
    yield held
    yield held[:, -2:-(border + 2):-1]


def _chunk(part: np.ndarray, segment: int) -> np.ndarray:
    """(C, n) -> (C, segment): a short part padded as the module doc says."""
    missing = segment - part.shape[-1]
    if missing <= 0:
        return part
    mode = "reflect" if part.shape[-1] > segment // 2 else "constant"
    return np.pad(part, ((0, 0), (0, missing)), mode=mode)


def one_pass(blocks: Iterable[np.ndarray], *, segment: int, stride: int, channels: int,
             start: Callable[[np.ndarray], Any], finish: Callable[[Any], np.ndarray],
             ahead: int = 1, on_segment: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """(S, C, m) float32 finished output blocks for (C, n) input blocks. ``start(chunk)`` submits the
    network on a (C, segment) chunk and ``finish(job)`` gives its (S, C, segment) output; ``ahead``
    chunks are submitted before the oldest is finished. ``on_segment(samples_out)`` after each."""
    border = segment - stride
    padded = _padded(blocks, channels, border)
    crop = border if next(padded) else 0
    buf = np.zeros((channels, 0), np.float32)
    buf_start, exhausted, total = 0, False, None  # total: the padded length, once known
    acc = wsum = None                  # (S, C, k) weighted outputs and (k,) summed weights from acc_start
    acc_start = offset = out_done = 0
    pending: deque = deque()           # (offset, n, job) submitted, not finished
    last_seen = False
    while True:
        while not last_seen and len(pending) <= ahead:
            # one sample past the chunk tells whether a later chunk starts
            while not exhausted and buf_start + buf.shape[-1] <= offset + segment:
                block = next(padded, None)
                if block is None:
                    exhausted, total = True, buf_start + buf.shape[-1]
                else:
                    buf = np.concatenate([buf, block], axis=-1)
            buf_end = buf_start + buf.shape[-1]
            if offset >= buf_end:
                last_seen = True
                break
            part = buf[:, offset - buf_start:offset - buf_start + segment]
            n = part.shape[-1]
            last_seen = exhausted and offset + stride >= buf_end
            weight = fade_window(segment, offset == 0, last_seen)
            pending.append((offset, n, weight, start(_chunk(part, segment))))
            offset += stride
            buf, buf_start = buf[:, max(0, offset - buf_start):], max(buf_start, offset)
        if not pending:
            return
        at, n, weight, job = pending.popleft()
        out = finish(job)[..., :n] * weight[:n]
        if acc is None:
            acc, wsum = np.zeros((*out.shape[:2], 0), np.float32), np.zeros(0, np.float32)
        grow = at + n - (acc_start + acc.shape[-1])
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((*acc.shape[:2], grow), np.float32)], axis=-1)
            wsum = np.concatenate([wsum, np.zeros(grow, np.float32)])
        acc[..., at - acc_start:at - acc_start + n] += out
        wsum[at - acc_start:at - acc_start + n] += weight[:n]
        # no later chunk reaches below at + stride; after the last one everything is done
        ready = acc.shape[-1] if not pending and last_seen else min(at + stride - acc_start, acc.shape[-1])
        done = np.divide(acc[..., :ready], wsum[:ready], out=np.zeros_like(acc[..., :ready]),
                         where=wsum[:ready] > 0)
        lo = max(0, crop - acc_start)
        hi = ready if total is None else min(ready, total - crop - acc_start)
        acc, wsum, acc_start = acc[..., ready:], wsum[ready:], acc_start + ready
        if hi > lo:
            out_done += hi - lo
            yield done[..., lo:hi]
        if on_segment:
            on_segment(out_done)
