"""Chunked overlap-add separation with bounded memory, in numpy, around any ``NetworkRunner``.

The input is cut into segments of ``L`` samples that overlap by ``O``. Both are multiples of
the STFT hop, so every segment's frames fall on one global frame grid. Each segment is
separated on its own, weighted by a cross-fade window and added up:

    weight  0 ......../‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾\\........ 0
            |margin|ramp|            |ramp|margin|     margin = O/4, ramp = O/2

Neighbouring windows sum to exactly 1 inside every overlap, and each segment's first and
last ``O/4`` samples, where its STFT and model see padding instead of real context, get
zero weight. So a pass-through mask gives the input back, and a model whose receptive field
fits inside ``O/4`` gives the same output as one unchunked pass. A model that declares a
bounded context (``context_frames()``) gets an overlap whose margin covers it.

A model may instead declare ``separate.crossfade: triangle``: Demucs' own segmenting, with
segments of exactly its training length, padded with the mixture around them, a triangular
weight and random-offset shifts (``triangle.py``); its waveform stems then match the
publisher's to float precision. ``separate.crossfade: linear_fade`` is the MSST framework's
segmenting for the RoFormers (``linear_fade.py``).

Segments are produced from a stream, so neither the input nor the output is ever held whole.
Everything here is numpy (float32 / complex64); the network runs behind ``NetworkRunner``
(torch: ``torch_runner.py``, ONNX Runtime: ``onnx_runner.py``), so this module never imports torch.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from stemsplit.audio.stft_numpy import NumpySTFT
from stemsplit.separation import linear_fade, triangle
from stemsplit.separation.margin import StartedInput, cancel, crossfade_window, segments
from stemsplit.separation.runner import NetworkRunner
from stemsplit.separation.spares import Spares
from stemsplit.separation.wiener import settings_of as wiener_settings
from stemsplit.separation.wiener import wiener
from stemsplit.settings import EngineSettings

_AHEAD = 1  # segments whose network runs while the previous one is finished


@dataclass
class _Job:
    """One pass of the network over one (shifted) segment: what its synthesis needs."""
    n: int                        # samples of the (shifted) segment
    offset: int                   # leading zeros of the shift, cut from the output
    spec_tf: np.ndarray | None    # (C, T, F) complex64 mixture spectrum, frame-major (spectral runners)
    mag: np.ndarray | None        # (C, F, T) float32 |spec|, the network's input
    result: Any                   # a Future of the network's output (B=1, ...)
    masks: np.ndarray | None = None  # where runner.stem_masks writes (from the spares); None: stem magnitudes


class _Done:
    """A result computed inline, with a Future's ``result()``."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _either(flag, default):
    """A flag's value where given (None: not given), else the model config's own default."""
    return default if flag is None else flag


class Engine:
    """Separates (channels, time) audio at the model's sample rate into (stems, channels, time).

    ``runner`` maps magnitudes (or waveforms) to stems; the engine does the rest. Not
    thread-safe on its own (it caches STFT envelopes): share one between threads behind a lock.
    """

    def __init__(self, runner: NetworkRunner, settings: EngineSettings | None = None):
        self.settings = (settings or EngineSettings()).checked()
        self.runner = runner
        config = runner.config
        self.config = config
        self.stft = NumpySTFT(config.stft)
        self.stems = list(config.stems)
        self.sample_rate = config.audio.sample_rate
        self.channels = config.audio.channels
        hop = config.stft.hop_length
        own, flags = config.separate, self.settings
        seconds = _either(flags.segment_seconds, own.segment_seconds)
        overlap = _either(flags.overlap, own.overlap)
        self.wiener_iterations = _either(flags.wiener_iterations, own.wiener_iterations)
        # stems that keep plain masking when the Wiener filter runs (separate.wiener_stems)
        self.plain_stems = [i for i, s in enumerate(self.stems) if own.wiener_stems and s not in own.wiener_stems]
        self.shifts = _either(flags.shifts, own.shifts)
        self.crossfade = own.crossfade
        self._network: ThreadPoolExecutor | None = None
        self._spares = Spares(keep=2 * max(1, self.shifts))  # a segment's jobs in the network, and the next's
        if self.crossfade == "triangle":  # exact sample counts, as the publisher computes them
            self.segment = max(4, int(np.floor(seconds * self.sample_rate + 1e-6)))
            self.overlap = self.segment - max(1, int((1 - overlap) * self.segment))
            self._weight = triangle.triangle_weight(self.segment, own.transition_power)
            return
        if self.crossfade == "linear_fade":  # exact sample counts, as the publisher computes them
            self.segment = max(4, round(seconds * self.sample_rate))
            self.overlap = self.segment - max(1, round((1 - overlap) * self.segment))
            return
        self.segment = max(4, round(seconds * self.sample_rate / hop)) * hop
        self.overlap = min(round(overlap * self.segment / hop) * hop, self.segment - hop)
        context = runner.context_frames()
        if context is not None:
            # each segment's discarded margin (overlap / 4) must cover the model's context
            needed = 4 * (context + 1) * hop
            self.overlap = max(self.overlap, min(needed, self.segment - hop))

    # --- one segment: analysis (main thread), network (worker thread), synthesis (main thread) ---

    def _start(self, wav: np.ndarray, network: Executor | None) -> list[_Job]:
        """(C, n) -> one job per sub-hop shift: the STFT now, the network submitted to ``network``
        (run inline when None)."""
        wav = np.asarray(wav, dtype=np.float32)
        shifts = max(1, self.shifts)
        hop = self.config.stft.hop_length
        jobs = []
        for i in range(shifts):
            offset = i * hop // shifts
            x = np.pad(wav, ((0, 0), (offset, 0))) if offset else wav
            jobs.append(self._start_one(x, offset, network))
        return jobs

    def _start_one(self, wav: np.ndarray, offset: int, network: Executor | None) -> _Job:
        runner = self.runner
        masks = None
        if not runner.spectral:
            call, args, spec_tf, mag = runner.stem_waveforms, (wav[None],), None, None
        else:
            c, t, f = wav.shape[0], self.stft.num_frames(wav.shape[-1]), self.stft.n_bins
            spec_tf = self.stft.frames_forward(wav, out=self._spares.take("spectrum", (c, t, f), np.complex64))
            mag = self._spares.take("magnitude", (c, f, t), np.float32)  # (C, F, T): the network's layout
            mag_tf = self.stft.buffer("bins", (t, f), np.float32)
            for ch in range(c):
                np.abs(spec_tf[ch], out=mag_tf)
                mag[ch] = mag_tf.T
            if getattr(runner, "mask_output", False):
                masks = self._spares.take("masks", (1, len(self.stems), c, f, t), np.float32)
                call, args = partial(runner.stem_masks, out=masks), (mag[None],)
            else:
                call, args = runner.stem_magnitudes, (mag[None],)
        result = network.submit(call, *args) if network is not None else _Done(call(*args))
        return _Job(wav.shape[-1], offset, spec_tf, mag, result, masks)

    def _finish(self, jobs: list[_Job]) -> np.ndarray:
        """The jobs of one segment -> (S, C, n) float32, averaged over the shifts."""
        out = None
        for job in jobs:
            y = self._finish_one(job)[..., job.offset:]
            out = y if out is None else out + y
            # the network is done with them and the stems are computed: their pages serve the next segment
            self._spares.give("spectrum", job.spec_tf)
            self._spares.give("magnitude", job.mag)
            self._spares.give("masks", job.masks)
        if len(jobs) > 1:
            out /= np.float32(len(jobs))
        return out

    def _finish_one(self, job: _Job) -> np.ndarray:
        """(S, C, n) float32 for one job, once its network output is there."""
        if not self.runner.spectral:
            return np.asarray(job.result.result()[0], dtype=np.float32)
        est = np.asarray(job.result.result()[0], dtype=np.float32)      # (S, C, F, T)
        if job.masks is not None:
            return self._finish_masks(job, est)
        return self._finish_magnitudes(job, est)

    def _finish_masks(self, job: _Job, masks: np.ndarray) -> np.ndarray:
        """(S, C, F, T) masks -> (S, C, n): each mask times the mixture's complex spectrum; stems that
        go through the Wiener filter get their magnitudes (mask x |X|) for it."""
        if self.wiener_iterations > 0 and len(self.plain_stems) < masks.shape[0]:
            return self._finish_magnitudes(job, masks * job.mag[None])
        spec_tf, n = job.spec_tf, job.n
        out = np.empty((masks.shape[0], spec_tf.shape[0], n), np.float32)
        t, f = spec_tf.shape[1:]
        est = self.stft.buffer("estimate", (t, f), np.complex64)
        for ch in range(spec_tf.shape[0]):
            for s in range(masks.shape[0]):
                np.multiply(masks[s, ch].T, spec_tf[ch], out=est)
                self.stft.frames_inverse(est, n, out=out[s, ch])
        return out

    def _finish_magnitudes(self, job: _Job, est_mag: np.ndarray) -> np.ndarray:
        """(S, C, F, T) stem magnitudes -> (S, C, n): the Wiener filter's stems, and the others with
        the mixture's phase."""
        spec_tf, n = job.spec_tf, job.n
        out = np.empty((est_mag.shape[0], spec_tf.shape[0], n), np.float32)
        wiener_est, wiener_index = None, {}
        if self.wiener_iterations > 0:
            chosen = [s for s in range(est_mag.shape[0]) if s not in self.plain_stems]
            wiener_est = wiener(np.ascontiguousarray(spec_tf.swapaxes(-1, -2)), est_mag, self.wiener_iterations,
                                stems=chosen, frame_major=True,           # (len(chosen), C, T, F)
                                **wiener_settings(self.config.separate))
            wiener_index = {s: i for i, s in enumerate(chosen)}
        plain = [s for s in range(est_mag.shape[0]) if s not in wiener_index]
        for s in wiener_index:
            self.stft.frames_inverse(wiener_est[wiener_index[s]], n, out=out[s])
        if plain:
            t, f = spec_tf.shape[1:]
            recip = self.stft.buffer("bins", (t, f), np.float32)
            phase = self.stft.buffer("phase", (t, f), np.complex64)
            est = self.stft.buffer("estimate", (t, f), np.complex64)
            # one channel, then one stem at a time through the iSTFT: the working memory stays that
            # of one (frames, bins) spectrum, in buffers kept between segments
            for ch in range(spec_tf.shape[0]):
                # |X| again from the frame-major spectrum: faster than reading the (F, T) copy transposed
                np.abs(spec_tf[ch], out=recip)
                np.maximum(recip, np.float32(1e-12), out=recip)
                np.divide(1.0, recip, out=recip)
                np.multiply(spec_tf[ch], recip, out=phase)              # X/|X| (0 where silent), no complex division
                for s in plain:
                    np.multiply(est_mag[s, ch].T, phase, out=est)       # a mask times |X| times X/|X|
                    self.stft.frames_inverse(est, n, out=out[s, ch])
        return out

    # --- streaming -----------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        """The network's worker thread, kept for the engine's life, so that an input started while the
        previous one is finished (``start_input``) queues its first segment behind that one's last."""
        if self._network is None:
            self._network = ThreadPoolExecutor(1, thread_name_prefix="stemsplit-network")
        return self._network

    def start_input(self, blocks: Iterable[np.ndarray]) -> StartedInput:
        """Read ``blocks`` up to its first segment and put that in the network now; ``stream`` the result.

        A batch starts its next file in ``stream``'s ``on_last``, so the network goes on to that
        file's first segment while this thread finishes the last one of the file before: no pause
        between files. (Demucs' triangle segmenting is not started early: it is returned as it is.)"""
        if self.crossfade in ("triangle", "linear_fade"):
            return StartedInput(blocks)
        started = StartedInput(blocks, segments(blocks, self.channels, self.segment, self.overlap))
        item = next(started.segments, None)
        if item is not None:
            chunk, first, last = item
            started.ahead.append((chunk.shape[-1], first, last, self._start(chunk, self._executor())))
        return started

    def stream(self, blocks: Iterable[np.ndarray] | StartedInput, on_segment: Callable[[int], None] | None = None,
               on_last: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
        """Yield (S, C, m) float32 output blocks for a stream of (C, n) input blocks (or a started input,
        ``start_input``), in order.

        ``on_segment(samples_done)`` is called after every segment (triangle: every stride);
        ``on_last()`` once, just before the last segment is finished (not for triangle segmenting).
        The network runs one segment ahead on a worker thread (ONNX Runtime and torch release the
        GIL), so it overlaps this thread's STFTs, Wiener filter, iSTFTs and the caller's writing
        of the previous one.
        """
        if self.crossfade == "triangle":
            yield from self._stream_triangle(blocks.blocks if isinstance(blocks, StartedInput) else blocks, on_segment)
        elif self.crossfade == "linear_fade":
            yield from self._stream_linear_fade(blocks.blocks if isinstance(blocks, StartedInput) else blocks,
                                                on_segment)
        else:
            yield from self._stream_margin(blocks, on_segment, on_last)

    def _stream_triangle(self, blocks: Iterable[np.ndarray],
                         on_segment: Callable[[int], None] | None) -> Iterator[np.ndarray]:
        """``stream`` for ``separate.crossfade: triangle``: one pass per shift, averaged (triangle.py)."""
        stride = self.segment - self.overlap
        leads = triangle.shift_leads(self.shifts, self.sample_rate)
        sources = itertools.tee(blocks, len(leads)) if len(leads) > 1 else [blocks]
        network = ThreadPoolExecutor(1, thread_name_prefix="stemsplit-network")
        start = lambda chunk: self._start_one(chunk, 0, network)  # noqa: E731
        finish = lambda job: self._finish([job])  # noqa: E731
        try:
            passes = [triangle.one_pass(source, lead, segment=self.segment, stride=stride, weight=self._weight,
                                        channels=self.channels, start=start, finish=finish, ahead=_AHEAD)
                      for source, lead in zip(sources, leads)]
            done = 0
            for out in triangle.merged(passes, stride):
                done += out.shape[-1]
                yield out
                if on_segment:
                    on_segment(done)
        finally:
            network.shutdown(wait=False, cancel_futures=True)

    def _stream_linear_fade(self, blocks: Iterable[np.ndarray],
                            on_segment: Callable[[int], None] | None) -> Iterator[np.ndarray]:
        """``stream`` for ``separate.crossfade: linear_fade`` (linear_fade.py)."""
        network = ThreadPoolExecutor(1, thread_name_prefix="stemsplit-network")
        try:
            yield from linear_fade.one_pass(blocks, segment=self.segment, stride=self.segment - self.overlap,
                                            channels=self.channels, start=lambda chunk: self._start(chunk, network),
                                            finish=self._finish, ahead=_AHEAD, on_segment=on_segment)
        finally:
            network.shutdown(wait=False, cancel_futures=True)

    def _stream_margin(self, blocks: Iterable[np.ndarray] | StartedInput, on_segment: Callable[[int], None] | None,
                       on_last: Callable[[], None] | None) -> Iterator[np.ndarray]:
        """``stream`` for ``separate.crossfade: margin`` (the module doc's windows)."""
        ov = self.overlap
        stride = self.segment - ov
        tail = tail_w = None  # weighted output of the previous segment's overlap region (S, C, ov), (ov,)
        done = 0
        if not isinstance(blocks, StartedInput):
            blocks = StartedInput(blocks, segments(blocks, self.channels, self.segment, ov))
        pieces, ahead = blocks.segments, blocks.ahead
        network = self._executor()
        try:
            while True:
                item = next(pieces, None)
                if item is not None:
                    chunk, first, last = item
                    ahead.append((chunk.shape[-1], first, last, self._start(chunk, network)))
                if not ahead or (item is not None and len(ahead) <= _AHEAD):
                    if item is None:
                        break
                    continue
                n, first, last, jobs = ahead.popleft()
                if last and on_last:
                    on_last()
                w = crossfade_window(n, ov if n > ov else n, first, last).astype(np.float32)
                out = self._finish(jobs)
                del jobs  # its spectrum and network output (42 MB at 10 s) go now, not after the yield
                out *= w
                if tail is not None:
                    k = min(ov, n)
                    out[..., :k] += tail[..., :k]
                    w[:k] += tail_w[:k]
                if last:
                    out /= np.maximum(w, np.float32(1e-8))
                    done += n
                    yield out
                    if on_segment:
                        on_segment(done)
                    break
                ready = n - ov
                done += stride
                head = out[..., :ready]  # divided in place: the tail after it stays as it is
                head /= np.maximum(w[:ready], np.float32(1e-8))
                yield head
                tail, tail_w = out[..., ready:], w[ready:]
                if on_segment:
                    on_segment(done)
        finally:
            cancel(ahead)

    def separate(self, mixture: np.ndarray, on_segment: Callable[[int], None] | None = None) -> np.ndarray:
        """(channels, time) at the model's rate -> (stems, channels, time) float32."""
        mixture = np.asarray(mixture, dtype=np.float32)
        if mixture.shape[-1] == 0:
            return np.zeros((len(self.stems), mixture.shape[0], 0), np.float32)
        return np.concatenate(list(self.stream([mixture], on_segment)), axis=-1)

    def num_segments(self, length: int) -> int:
        """How many times ``stream`` calls ``on_segment`` for ``length`` samples."""
        if self.crossfade == "triangle":
            return max(1, triangle.count_outputs(length, self.segment - self.overlap))
        if self.crossfade == "linear_fade":
            return max(1, linear_fade.count_segments(length, self.segment, self.segment - self.overlap))
        if length <= self.segment:
            return 1
        stride = self.segment - self.overlap
        return 1 + -(-(length - self.segment) // stride)
