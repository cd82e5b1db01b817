"""Real-time separation: blocks of any size in, the same number of stem samples out, at a fixed
latency that the STFT and the model's look-ahead give exactly.

Shape letters: C channels, S stems, F frequency bins, N the STFT window (n_fft), H its hop,
m samples of a block.

Causal STFT. Frame k covers input samples [kH - N + H, kH + H): it ends at the newest sample, and
the samples before the start are zeros. It is complete when input sample kH + H - 1 arrives;
then the network (``StreamStep``) maps its magnitude to one frame of masks, the masked spectrum
goes through the inverse FFT, a periodic Hann synthesis window and overlap-add onto the same
span, divided by the summed squared window (H must divide N; the sum is then the same at every
position of a hop, and constant when N / H >= 3, e.g. the hop N/4 of every shipped model).
Once frame k is added, output samples [kH + H - N, kH + 2H - N) are final: no later frame
covers them.

Latency. Output sample t is final once input sample t + N - 1 is in (frame k ends at
kH + H - 1 and finishes samples from kH + H - N on), so ``process`` returns, at the position of
input sample n, the separated sample n - L with

    L = N - 1 + H * lookahead_frames

whatever the block size: a block's output has its length, and the same signal cut into other
blocks gives the same samples. The first L output samples belong to times before the stream
began (what the first frames' masks spread there: near silence). ``flush()`` returns the
last L samples (the engine fed with zeros), so that output[L:] of a whole stream plus the flush
is aligned with the input and of its length.

Hot path. Every array is made in the constructor: the input ring (written twice, at i and i + N,
so that the newest N samples are always one contiguous slice), the windowed frame, the spectrum,
the masked spectra, the synthesis frames, the overlap-add ring and the two buffers of final
samples. ``np.fft.rfft``/``irfft`` write into them (``out=``, numpy >= 2), and the network step
reads and writes arrays of its own (ONNX Runtime's IO binding). ``process(block, out)`` then
allocates nothing. Not thread-safe: one engine per stream.
"""
from __future__ import annotations

import numpy as np

from stemsplit.audio.stft_numpy import hann
from stemsplit.errors import ConfigError
from stemsplit.onnx_format import stream_latency
from stemsplit.separation.stream_step import StreamStep

_ENVELOPE_FLOOR = 1e-3  # a summed squared window below this divides noise up: such a hop is refused
_MAG_FLOOR = np.float32(1e-12)


def synthesis_window(n_fft: int, hop: int) -> np.ndarray:
    """(N,) float32: the Hann window divided by the summed squared window at each position of the
    frame (periodic in H once every sample is covered by N / H frames)."""
    if n_fft % hop:
        raise ConfigError(f"stft.hop_length {hop} must divide stft.n_fft {n_fft} for streaming")
    w = hann(n_fft).astype(np.float64)
    envelope = (w ** 2).reshape(n_fft // hop, hop).sum(axis=0)       # (H,): every frame's share at a position
    if envelope.min() < _ENVELOPE_FLOOR:
        raise ConfigError(f"stft.hop_length {hop}: too large for a Hann window of {n_fft} to stream (the "
                          "overlap-add cannot be normalised); use n_fft / hop_length >= 2")
    return (w / np.tile(envelope, n_fft // hop)).astype(np.float32)


class StreamEngine:
    """Separates an unbounded (C, time) stream at the model's rate, block by block (module doc)."""

    def __init__(self, step: StreamStep):
        cfg = step.config
        self.step = step
        self.stems = list(cfg.stems)
        self.sample_rate = cfg.audio.sample_rate
        self.channels = c = cfg.audio.channels
        self.n_fft = n = cfg.stft.n_fft
        self.hop = h = cfg.stft.hop_length
        self.lookahead = step.lookahead_frames
        self.latency_samples = stream_latency(n, h, self.lookahead)
        s, f = len(self.stems), n // 2 + 1
        # windows repeated per row: a broadcast multiply into an operand's own memory takes a copy
        self._window = np.ascontiguousarray(np.broadcast_to(hann(n), (c, n)))
        self._synthesis = np.ascontiguousarray(np.broadcast_to(synthesis_window(n, h), (s * c, n)))
        self._masks = step.out[0, ..., 0]                                    # (S, C, F) view
        self._mag = step.mag[0, ..., 0]                                      # (C, F) view
        self._spectra = np.zeros((self.lookahead + 1, c, f), np.complex64)  # frames awaiting their masks
        self._ring = np.zeros((c, 2 * n), np.float32)                        # the newest N samples, twice
        self._windowed = np.zeros((c, n), np.float32)
        self._ratio = np.zeros((c, f), np.float32)
        self._estimate = np.zeros((s * c, f), np.complex64)
        self._frames = np.zeros((s * c, n), np.float32)
        self._sum = np.zeros((s * c, n), np.float32)                         # overlap-add ring
        self._final = [np.zeros((s, c, h), np.float32) for _ in range(2)]    # final samples of two frames
        self._zeros = np.zeros((c, h), np.float32)
        # complex64 arrays seen as (re, im) float32 pairs: a real mask times a complex spectrum is then
        # one float32 multiply, without the cast buffer a float32 x complex64 ufunc call takes
        self._spectra_pairs = self._spectra.view(np.float32).reshape(self.lookahead + 1, c, f, 2)
        self._estimate_pairs = self._estimate.view(np.float32).reshape(s, c, f, 2)
        self._mask_pairs = self._masks[..., None]                            # (S, C, F, 1) view
        self.reset()

    def reset(self) -> None:
        """Start a new stream: zero input history, zero network state."""
        for array in (self._spectra, self._ring, self._sum, *self._final):
            array[...] = 0
        self.step.reset()
        self._write = 0       # next input position in the ring, in [0, N)
        self._filled = 0      # samples of the current hop already in, in [0, H)
        self._sum_at = 0      # overlap-add ring position of the oldest span sample, a multiple of H
        self._frame = 0       # index of the next frame to complete
        self._now = 1         # which of _final holds the newest frame's final samples (0/1)
        self.samples_in = 0

    # --- one block -----------------------------------------------------------------------

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(C, m) float at the model's rate -> (S, C, m) float32: the stems of the input L samples ago,
        written into ``out`` when given (the allocation-free path)."""
        m = block.shape[-1]
        if out is None:
            out = np.empty((len(self.stems), self.channels, m), np.float32)
        h, pos = self.hop, 0
        while pos < m:
            k = min(m - pos, h - self._filled)
            self._take(block[:, pos:pos + k])
            j = self._filled
            self._filled += k
            previous = self._final[self._now]
            if self._filled < h:
                # hop position j + i is the previous frame's final sample j + i + 1
                out[..., pos:pos + k] = previous[..., j + 1:j + 1 + k]
            else:
                out[..., pos:pos + k - 1] = previous[..., j + 1:]
                self._complete_frame()
                out[..., pos + k - 1] = self._final[self._now][..., 0]
                self._filled = 0
            pos += k
        self.samples_in += m
        return out

    def flush(self) -> np.ndarray:
        """(S, C, L) float32: the last L samples, fed with zeros; then the engine is reset."""
        out = np.empty((len(self.stems), self.channels, self.latency_samples), np.float32)
        done = 0
        while done < self.latency_samples:
            k = min(self.hop, self.latency_samples - done)
            self.process(self._zeros[:, :k], out[..., done:done + k])
            done += k
        self.reset()
        return out

    # --- internals -----------------------------------------------------------------------

    def _take(self, x: np.ndarray) -> None:
        """Append (C, k <= H) samples to the input ring (both copies)."""
        n, w, k = self.n_fft, self._write, x.shape[-1]
        first = min(k, n - w)
        self._ring[:, w:w + first] = x[:, :first]
        self._ring[:, w + n:w + n + first] = x[:, :first]
        if k > first:
            self._ring[:, :k - first] = x[:, first:]
            self._ring[:, n:n + k - first] = x[:, first:]
        self._write = (w + k) % n

    def _complete_frame(self) -> None:
        """Analyse the newest frame, run the network, synthesise the frame its masks are for."""
        n, w = self.n_fft, self._write
        slot = self._frame % (self.lookahead + 1)
        spectrum = self._spectra[slot]
        np.multiply(self._ring[:, w:w + n], self._window, out=self._windowed)
        np.fft.rfft(self._windowed, axis=-1, out=spectrum)
        np.abs(spectrum, out=self._mag)
        self.step.run()
        target = self._frame - self.lookahead  # the frame the step's output is for
        self._frame += 1
        self._now ^= 1
        final = self._final[self._now]
        if target < 0:  # a look-ahead model's first frames: nothing to synthesise yet
            final[...] = 0.0
            return
        self._synthesise(target % (self.lookahead + 1), final)

    def _synthesise(self, slot: int, final: np.ndarray) -> None:
        """Mask the spectrum in ``slot``, overlap-add its S*C frames; the span's first H samples -> ``final``."""
        s, c = len(self.stems), self.channels
        pairs = self._spectra_pairs[slot]                                     # (C, F, 2)
        if self.step.output_kind == "masks":
            np.multiply(self._mask_pairs, pairs, out=self._estimate_pairs)    # mask x mixture spectrum
        else:  # magnitudes: times the mixture's phase X / |X| (0 where silent)
            for i in range(s):
                np.abs(self._spectra[slot], out=self._ratio)  # this frame's |X| (with look-ahead, not the newest's)
                np.maximum(self._ratio, _MAG_FLOOR, out=self._ratio)
                np.divide(self._masks[i], self._ratio, out=self._ratio)
                np.multiply(self._ratio[..., None], pairs, out=self._estimate_pairs[i])
        np.fft.irfft(self._estimate, n=self.n_fft, axis=-1, out=self._frames)
        self._frames *= self._synthesis
        n, h, p = self.n_fft, self.hop, self._sum_at
        np.add(self._sum[:, p:], self._frames[:, :n - p], out=self._sum[:, p:])
        if p:
            np.add(self._sum[:, :p], self._frames[:, n - p:], out=self._sum[:, :p])
        final.reshape(s * c, h)[...] = self._sum[:, p:p + h]
        self._sum[:, p:p + h] = 0.0
        self._sum_at = (p + h) % n
