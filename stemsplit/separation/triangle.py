"""Triangle cross-fade segmenting (``separate.crossfade: triangle``): Demucs' ``apply_model``, streamed.

Segments of exactly ``segment`` samples start every ``stride`` samples (0, stride, 2 stride, ...
while inside the signal). A segment cut short by the end of the signal is padded back to
``segment`` samples with the mixture's own samples before it (centred: half the missing length
on the left) and zeros only beyond the signal, and the network's output is trimmed back to the
real part. Each output is weighted by a triangle over the segment (1, 2, ... up to the middle,
then down; normalised; ``** transition_power``), the weighted outputs are added up and divided
by the summed weights. This module reproduces that arithmetic in float32, in the same order, so
a waveform model gives the publisher's stems to float precision; the stream never holds more
than about two segments of input and one of output.

Shifts (the "shift trick"): a pass runs on the signal delayed by ``lead`` zeros and its first
``lead`` output samples are dropped; ``shifts`` passes with leads drawn uniformly from
[0, 0.5 s] are averaged. The leads come from a generator seeded with ``SHIFT_SEED``, so a run is
reproducible (the publisher's draws are unseeded).

Shape letters: S stems, C channels, n samples. numpy only.
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

SHIFT_SEED = 0
MAX_SHIFT_SECONDS = 0.5  # the publisher's shift range


def triangle_weight(segment: int, power: float = 1.0) -> np.ndarray:
    """(segment,) float32 weights: 1 .. segment/2, then segment - segment/2 .. 1, over their maximum, ** power."""
    half = segment // 2
    ramp = np.concatenate([np.arange(1, half + 1), np.arange(segment - half, 0, -1)]).astype(np.float32)
    weight = ramp / np.float32(ramp.max())
    return weight if power == 1 else (weight ** np.float32(power)).astype(np.float32)


def shift_leads(shifts: int, sample_rate: int) -> list[int]:
    """Each pass's delay in samples: none without shifts, else ``shifts`` seeded draws in [0, 0.5 s]."""
    if shifts <= 0:
        return [0]
    top = int(MAX_SHIFT_SECONDS * sample_rate)
    rng = random.Random(SHIFT_SEED)
    return [top - rng.randint(0, top) for _ in range(shifts)]


def count_outputs(length: int, stride: int) -> int:
    """How many blocks ``merged`` yields for a signal of ``length`` samples (one per stride)."""
    return -(-length // stride) if length > 0 else 0


def _pad_chunk(buf: np.ndarray, buf_start: int, buf_end: int, start: int, segment: int) -> np.ndarray:
    """(C, segment): the signal from global position ``start``, zeros outside [0, buf_end)."""
    lo, hi = max(start, buf_start), min(start + segment, buf_end)
    chunk = np.zeros((buf.shape[0], segment), np.float32)
    if hi > lo:
        chunk[:, lo - start:hi - start] = buf[:, lo - buf_start:hi - buf_start]
    return chunk


def one_pass(blocks: Iterable[np.ndarray], lead: int, *, segment: int, stride: int, weight: np.ndarray,
             channels: int, start: Callable[[np.ndarray], Any], finish: Callable[[Any], np.ndarray],
             ahead: int = 1) -> Iterator[np.ndarray]:
    """(S, C, m) float32 finished output blocks of one pass over (C, n) input blocks delayed by
    ``lead`` zeros, the lead's output already dropped. ``start(chunk)`` submits the network on a
    (C, segment) chunk and ``finish(job)`` gives its (S, C, segment) output; ``ahead`` chunks are
    submitted before the oldest one is finished."""
    source = iter(blocks)
    buf = np.zeros((channels, lead), np.float32)
    buf_start, exhausted = 0, False
    acc = wsum = None                 # (S, C, k) weighted outputs and (k,) summed weights from acc_start
    acc_start = 0
    pending: deque = deque()          # (offset, n, job) submitted, not finished
    offset = 0
    while True:
        # submit chunks until ``ahead`` wait, reading input as far as the next chunk's end
        while len(pending) <= ahead:
            while not exhausted and buf_start + buf.shape[-1] < offset + segment:
                try:
                    block = np.asarray(next(source), dtype=np.float32)
                except StopIteration:
                    exhausted = True
                    break
                buf = np.concatenate([buf, block], axis=-1)
            buf_end = buf_start + buf.shape[-1]
            if offset >= buf_end:     # only when exhausted: no chunk starts past the end
                break
            n = min(segment, buf_end - offset)
            left = offset - (segment - n) // 2
            pending.append((offset, n, start(_pad_chunk(buf, buf_start, buf_end, left, segment))))
            offset += stride
            keep = max(buf_start, offset - segment)  # a short final chunk reaches back at most segment / 2
            buf, buf_start = buf[:, keep - buf_start:], keep
        if not pending:
            return
        at, n, job = pending.popleft()
        out = finish(job)
        trim = (segment - n) // 2
        contribution = weight[:n] * out[..., trim:trim + n]
        if acc is None:
            acc = np.zeros((*out.shape[:2], 0), np.float32)
            wsum = np.zeros(0, np.float32)
        grow = at + n - (acc_start + acc.shape[-1])
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((*acc.shape[:2], grow), np.float32)], axis=-1)
            wsum = np.concatenate([wsum, np.zeros(grow, np.float32)])
        acc[..., at - acc_start:at - acc_start + n] += contribution
        wsum[at - acc_start:at - acc_start + n] += weight[:n]
        ready = min(at + stride, at + n) - acc_start  # no later chunk reaches below at + stride
        done = acc[..., :ready] / wsum[:ready]
        acc, wsum, acc_start = acc[..., ready:], wsum[ready:], acc_start + ready
        cut = max(0, min(lead - (acc_start - ready), ready))
        if ready - cut > 0:
            yield done[..., cut:]


def merged(passes: list[Iterator[np.ndarray]], stride: int) -> Iterator[np.ndarray]:
    """The mean of the passes' outputs (each the same signal's stems), yielded one stride at a time."""
    queues: list[deque] = [deque() for _ in passes]
    have = [0] * len(passes)
    live = [True] * len(passes)
    while True:
        for i, it in enumerate(passes):
            while live[i] and have[i] < stride:
                block = next(it, None)
                if block is None:
                    live[i] = False
                else:
                    queues[i].append(block)
                    have[i] += block.shape[-1]
        size = min(min(have), stride)
        if size <= 0:
            return
        out = None
        for i, queue in enumerate(queues):
            part = _take(queue, size)
            have[i] -= size
            out = part if out is None else out + part
        if len(passes) > 1:
            out /= np.float32(len(passes))
        yield out


def _take(queue: deque, size: int) -> np.ndarray:
    """The first ``size`` samples of a queue of (S, C, m) blocks, removed from it."""
    parts, got = [], 0
    while got < size:
        block = queue.popleft()
        need = size - got
        if block.shape[-1] > need:
            queue.appendleft(block[..., need:])
            block = block[..., :need]
        parts.append(block)
        got += block.shape[-1]
    return parts[0].copy() if len(parts) == 1 else np.concatenate(parts, axis=-1)
