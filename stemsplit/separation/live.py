"""Live separation behind an audio callback: a deadline per block, the mix when it is missed.

The sound card's callback (``AudioBackend``, e.g. ``live_sounddevice.SoundDeviceBackend``;
tests use a fake one) hands over one block of B samples and must give one back before the next
is due. ``LiveLoop.callback`` copies the block into a slot, wakes the worker thread that runs the
``StreamEngine``, and waits for that slot's stems until the block's deadline (B / rate after the
callback began). In time, the chosen stem is played; late, the block goes out as the unseparated
mix, delayed by the engine's latency so that it lines up with the stems around it, and the miss
is counted. The worker finishes the late block anyway (the separation's state stays whole) and
the stream goes on. If the worker falls a whole ring of slots behind, a block is not separated at
all (counted as dropped; the worker feeds the engine silence in its place to keep the timeline).

Shape letters: C channels, S stems, B samples of a block, K slots. Every buffer is made once.
"""
from __future__ import annotations

import queue
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from stemsplit.errors import StemsplitError
from stemsplit.separation.streaming import StreamEngine

Callback = Callable[[np.ndarray | None, np.ndarray | None], bool]  # (indata (B, C), outdata (B, C)) -> go on?


class LiveAudioError(StemsplitError):
    """A sound device that cannot be opened or used (or PortAudio missing)."""


class AudioBackend(Protocol):
    def run(self, callback: Callback, *, sample_rate: int, block: int, in_channels: int, out_channels: int,
            idle: Callable[[], bool]) -> None:
        """Call ``callback(indata, outdata)`` once per block from the audio thread (None for a
        direction with 0 channels) until it returns False or ``idle()``, called about every 0.1 s
        on this thread, returns False."""
        ...


def play_choice(stems: list[str], play: str | None) -> tuple[int, bool] | None:
    """(stem index, minus: play the mix minus that stem) for ``--play``; None: play nothing."""
    if play is None:
        return None
    name = play[3:] if play.startswith("no_") else play
    if name not in stems:
        raise LiveAudioError(f"--play {play!r}: not a stem of this model ({', '.join(stems)}), or no_<stem> for "
                             "everything but it (e.g. no_vocals: karaoke)")
    return stems.index(name), play.startswith("no_")


class LiveLoop:
    """One live stream: ``callback`` for the audio thread, the engine on a worker thread."""

    def __init__(self, engine: StreamEngine, block: int, *, play: str | None = None,
                 on_stems: Callable[[np.ndarray], None] | None = None, slots: int = 16,
                 source: Iterator[np.ndarray] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.engine, self.block, self.clock = engine, block, clock
        self.deadline = block / engine.sample_rate
        c, s, k = engine.channels, len(engine.stems), slots
        self.play = play_choice(engine.stems, play)
        self.on_stems = on_stems
        self._inputs = np.zeros((k, c, block), np.float32)
        self._stems = np.zeros((k, s, c, block), np.float32)
        self._slot_seq = [0] * k
        self._ready = [threading.Event() for _ in range(k)]
        self._played = np.zeros((c, block), np.float32)
        lat = engine.latency_samples
        self._history = np.zeros((c, lat + 2 * block), np.float32)  # the mix, to play it late by the latency
        self._filled = self._done = self._seq = 0
        self._wake = threading.Semaphore(0)
        self._closing = False
        self.compute_ms = array("d")
        self.misses = self.dropped = self.underruns = 0
        self.error: BaseException | None = None
        self._source = _Prefetch(source, k) if source is not None else None
        self._worker = threading.Thread(target=self._work, name="stemsplit-stream", daemon=True)
        self._worker.start()

    @property
    def blocks(self) -> int:
        return self._seq

    # --- the audio thread ---------------------------------------------------------------

    def callback(self, indata: np.ndarray | None, outdata: np.ndarray | None) -> bool:
        """One block: (B, C) float32 in (None: from the file source), (B, C) out. False: the end."""
        start = self.clock()
        if self._source is not None:
            indata = self._source.next()
            if indata is None:
                return False
            if indata is _Prefetch.LATE:  # the reader is behind: silence, counted
                self.underruns += 1
                self.misses += 1
                if outdata is not None:
                    outdata[...] = 0.0
                return True
            block = indata
        else:
            block = indata.T
        seq, k = self._seq, len(self._ready)
        self._seq += 1
        self._remember(seq, block)
        ok, slot = False, None
        if self._filled - self._done >= k:
            self.dropped += 1
        else:
            slot = self._filled % k
            self._inputs[slot] = block
            self._slot_seq[slot] = seq
            self._ready[slot].clear()
            self._filled += 1
            self._wake.release()
            ok = self._ready[slot].wait(max(0.0, self.deadline - (self.clock() - start)))
        if not ok:
            self.misses += 1
        if outdata is not None:
            self._play(seq, slot if ok else None, outdata)
        return True

    def _remember(self, seq: int, block: np.ndarray) -> None:
        """Write the block into the mix history ring (two slices where it wraps)."""
        _ring_copy(self._history, seq * self.block, block)

    def _play(self, seq: int, slot: int | None, outdata: np.ndarray) -> None:
        out = self._played
        _ring_read(self._history, seq * self.block - self.engine.latency_samples, out)  # the mix, aligned
        if self.play is None:
            out[...] = 0.0
        elif slot is not None:
            index, minus = self.play
            stem = self._stems[slot, index]
            if minus:
                np.subtract(out, stem, out=out)
            else:
                out[...] = stem
        outdata[...] = out.T

    # --- the worker thread --------------------------------------------------------------

    def _work(self) -> None:
        k, expected = len(self._ready), 0
        zeros = np.zeros_like(self._inputs[0])
        spare = np.zeros_like(self._stems[0])
        try:
            while True:
                self._wake.acquire()
                if self._closing and self._done == self._filled:
                    for _ in range(self._seq - expected):  # blocks dropped at the end
                        self.engine.process(zeros, spare)
                        self._emit(spare)
                    return
                slot = self._done % k
                for _ in range(self._slot_seq[slot] - expected):  # dropped blocks: silence keeps the timeline
                    self.engine.process(zeros, spare)
                    self._emit(spare)
                begin = self.clock()
                self.engine.process(self._inputs[slot], self._stems[slot])
                self.compute_ms.append((self.clock() - begin) * 1e3)
                expected = self._slot_seq[slot] + 1
                self._ready[slot].set()
                self._emit(self._stems[slot])
                self._done += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by close()
            self.error = exc

    def _emit(self, stems: np.ndarray) -> None:
        if self.on_stems is not None:
            self.on_stems(stems)

    # --- the main thread ----------------------------------------------------------------

    def run(self, backend: AudioBackend, *, in_channels: int, out_channels: int,
            idle: Callable[[], bool] = lambda: True) -> None:
        backend.run(self.callback, sample_rate=self.engine.sample_rate, block=self.block, in_channels=in_channels,
                    out_channels=out_channels, idle=lambda: idle() and self.error is None)

    def close(self) -> None:
        """Let the worker finish the blocks it was given, then stop it; raises its error if it had one."""
        self._closing = True
        self._wake.release()
        self._worker.join()
        if self._source is not None:
            self._source.close()
        if self.error is not None:
            raise self.error


class _Prefetch:
    """A file's blocks read ahead on a thread, so the audio callback never waits on a disk."""

    LATE = object()

    def __init__(self, source: Iterator[np.ndarray], depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._source, self._stop = source, threading.Event()
        self._thread = threading.Thread(target=self._read, name="stemsplit-read", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for block in self._source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        finally:
            self._queue.put(None)

    def next(self):
        """The next (C, B) block, None at the end, LATE when the reader has not got it yet."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return self.LATE

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass


def _ring_copy(ring: np.ndarray, at: int, block: np.ndarray) -> None:
    n, size = block.shape[-1], ring.shape[-1]
    start = at % size
    first = min(n, size - start)
    ring[:, start:start + first] = block[:, :first]
    if n > first:
        ring[:, :n - first] = block[:, first:]


def _ring_read(ring: np.ndarray, at: int, out: np.ndarray) -> None:
    """Samples [at, at + n) of the ring's timeline into ``out`` (zeros before time 0)."""
    n, size = out.shape[-1], ring.shape[-1]
    if at < 0:
        lead = min(-at, n)
        out[:, :lead] = 0.0
        if lead < n:
            _ring_read(ring, 0, out[:, lead:])
        return
    start = at % size
    first = min(n, size - start)
    out[:, :first] = ring[:, start:start + first]
    if n > first:
        out[:, first:] = ring[:, :n - first]
