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

Segments are produced from a stream, so neither the input nor the output is ever held whole.
Everything here is numpy (float32 / complex64); the network runs behind ``NetworkRunner``
(torch: ``torch_runner.py``, ONNX Runtime: ``onnx_runner.py``), so this module never imports torch.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from stemsplit.audio.stft_numpy import NumpySTFT
from stemsplit.separation.runner import NetworkRunner
from stemsplit.separation.wiener import wiener
from stemsplit.settings import EngineSettings


def _either(flag, default):
    """A flag's value where given (None: not given), else the model config's own default."""
    return default if flag is None else flag


def crossfade_window(length: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """(length,) float64 weights: zero margins and linear ramps at the inner edges (see module doc)."""
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
        self.segment = max(4, round(seconds * self.sample_rate / hop)) * hop
        self.overlap = min(round(overlap * self.segment / hop) * hop, self.segment - hop)
        context = runner.context_frames()
        if context is not None:
            # each segment's discarded margin (overlap / 4) must cover the model's context
            needed = 4 * (context + 1) * hop
            self.overlap = max(self.overlap, min(needed, self.segment - hop))
        # a runner whose network reads the complex STFT takes it beside the magnitude (optional extension)
        self._wants_spec = getattr(runner, "input_kind", "magnitude") == "complex"

    # --- one segment ---------------------------------------------------------------------

    def _separate_once(self, wav: np.ndarray) -> np.ndarray:
        """(C, n) float32 -> (S, C, n) float32, through the runner: spectral or waveform."""
        runner = self.runner
        if not runner.spectral:
            return np.asarray(runner.stem_waveforms(wav[None])[0], dtype=np.float32)
        n = wav.shape[-1]
        spec = self.stft(wav)                                           # (C, F, T) complex64
        mag = np.abs(spec)                                              # (C, F, T) float32
        extra = {"spec": spec[None]} if self._wants_spec else {}
        est_mag = np.asarray(runner.stem_magnitudes(mag[None], **extra)[0], dtype=np.float32)  # (S, C, F, T)
        out = np.empty((est_mag.shape[0], *wav.shape), np.float32)
        est = wiener(spec, est_mag, self.wiener_iterations) if self.wiener_iterations > 0 else None
        phase = None
        # one stem at a time through the iSTFT: its frames are the largest temporaries, so the
        # working memory stays that of one stem instead of all of them
        for s in range(est_mag.shape[0]):
            if est is not None and s not in self.plain_stems:
                out[s] = self.stft.inverse(est[s], n)
                continue
            if phase is None:
                phase = spec * (1.0 / np.maximum(mag, np.float32(1e-12)))  # X/|X| (0 where silent), no complex division
            out[s] = self.stft.inverse(self._with_phase(est_mag[s], phase), n)  # a mask times |X| times X/|X|
        return out

    @staticmethod
    def _with_phase(mag: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """(C, F, T) magnitudes times the (C, F, T) phase: complex64, laid out frame-major in memory so
        that the inverse FFT reads it contiguously."""
        c, f, t = mag.shape
        out = np.empty((c, t, f), np.complex64)
        np.multiply(mag.swapaxes(-1, -2), phase.swapaxes(-1, -2), out=out)
        return out.swapaxes(-1, -2)

    def separate_segment(self, wav: np.ndarray) -> np.ndarray:
        """(C, n) -> (S, C, n) float32, averaged over the configured sub-hop shifts."""
        wav = np.asarray(wav, dtype=np.float32)
        shifts = max(1, self.settings.shifts)
        hop = self.config.stft.hop_length
        out = None
        for i in range(shifts):
            offset = i * hop // shifts
            x = np.pad(wav, ((0, 0), (offset, 0))) if offset else wav
            y = self._separate_once(x)[..., offset:]
            out = y if out is None else out + y
        if shifts > 1:
            out /= np.float32(shifts)
        return out

    # --- streaming -----------------------------------------------------------------------

    def stream(self, blocks: Iterable[np.ndarray],
               on_segment: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
        """Yield (S, C, m) float32 output blocks for a stream of (C, n) input blocks, in order.

        ``on_segment(samples_done)`` is called after every segment.
        """
        seg, ov = self.segment, self.overlap
        stride = seg - ov
        pending = np.zeros((self.channels, 0), np.float32)
        tail = None  # weighted output of the previous segment's overlap region (S, C, ov)
        tail_w = None
        first, done = True, 0
        source = iter(blocks)
        exhausted = False
        while True:
            # a segment is final only when no sample follows it, so look one sample ahead
            while not exhausted and pending.shape[-1] <= seg:
                try:
                    pending = np.concatenate([pending, np.asarray(next(source), dtype=np.float32)], axis=-1)
                except StopIteration:
                    exhausted = True
            if pending.shape[-1] == 0:
                break
            last = exhausted and pending.shape[-1] <= seg
            chunk = pending[:, :seg]
            n = chunk.shape[-1]
            w = crossfade_window(n, ov if n > ov else n, first, last).astype(np.float32)
            out = self.separate_segment(chunk)
            out *= w
            if tail is not None:
                k = min(ov, n)
                out[..., :k] += tail[..., :k]
                w[:k] += tail_w[:k]
            if last:
                out /= np.maximum(w, np.float32(1e-8))
                yield out
                done += n
                if on_segment:
                    on_segment(done)
                break
            ready = n - ov
            yield out[..., :ready] / np.maximum(w[:ready], np.float32(1e-8))
            tail, tail_w = out[..., ready:], w[ready:]
            pending = pending[:, stride:]
            first = False
            done += stride
            if on_segment:
                on_segment(done)

    def separate(self, mixture: np.ndarray, on_segment: Callable[[int], None] | None = None) -> np.ndarray:
        """(channels, time) at the model's rate -> (stems, channels, time) float32."""
        mixture = np.asarray(mixture, dtype=np.float32)
        if mixture.shape[-1] == 0:
            return np.zeros((len(self.stems), mixture.shape[0], 0), np.float32)
        return np.concatenate(list(self.stream([mixture], on_segment)), axis=-1)

    def num_segments(self, length: int) -> int:
        if length <= self.segment:
            return 1
        stride = self.segment - self.overlap
        return 1 + -(-(length - self.segment) // stride)
