"""The numpy STFT / inverse-STFT pair: the same numbers as ``stemsplit.audio.stft`` without torch.

It reproduces ``torch.stft`` / ``torch.istft`` as ``STFT`` calls them: a periodic Hann window,
``center=True`` framing with reflect padding (constant padding when the input is too short to
reflect), and overlap-add divided by the summed squared window. float32 in, complex64 out, so
``inverse(forward(x), len(x))`` returns ``x`` to float32 precision (see tests).
"""
from __future__ import annotations

import numpy as np

from stemsplit.config import STFTConfig

_ENVELOPE_FLOOR = 1e-11  # torch.istft refuses an envelope below this; here those samples are 0


def hann(n_fft: int) -> np.ndarray:
    """(n_fft,) float32 periodic Hann window, as ``torch.hann_window(n_fft, periodic=True)``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _check_out(out: np.ndarray) -> None:
    if not out.flags.c_contiguous:  # written through reshaped views, which must not be copies
        raise ValueError("out: must be a C-contiguous array")


class NumpySTFT:
    def __init__(self, cfg: STFTConfig):
        """``cfg`` comes from a validated config (config.py checks that its window is 'hann')."""
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.window = hann(self.n_fft)
        # the analysis window times n_fft, for rfft(norm="forward"), which divides by n_fft again: numpy 2
        # runs a forward transform whose scale is the Python int 1 (norm=None) in float64, casting in
        # and out (3x the time of the float32 transform here); a float32 scale keeps it in float32, as
        # the inverse already is (differences of float32 rounding, ~1e-7 of the spectrum's peak)
        self._analysis = self.window * np.float32(self.n_fft)
        self._inverse_envelopes: dict[int, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}  # scratch arrays: not thread-safe, as the engine

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        return length // self.hop_length + 1

    def forward(self, wav: np.ndarray) -> np.ndarray:
        """(..., time) real -> (..., freq, frames) complex64."""
        return np.ascontiguousarray(np.swapaxes(self.frames_forward(wav), -1, -2))

    def frames_forward(self, wav: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(..., time) real -> (..., frames, freq) complex64: ``forward`` in the FFT's own, frame-major
        layout (no transposing copy; ``frames_inverse`` takes it back). Written into ``out`` when
        given; one channel at a time, so the windowed frames (the largest temporary) are one
        channel's, in a buffer kept between calls."""
        wav = np.asarray(wav, dtype=np.float32)
        half = self.n_fft // 2
        mode = "reflect" if wav.shape[-1] > half else "constant"
        padded = np.pad(wav, [(0, 0)] * (wav.ndim - 1) + [(half, half)], mode=mode)
        # (..., frames, n_fft) views into the padded signal: no copy until the window multiplies
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=-1)[..., :: self.hop_length, :]
        if out is None:
            out = np.empty(frames.shape[:-1] + (self.n_bins,), np.complex64)
        _check_out(out)
        rows = frames.reshape(-1, *frames.shape[-2:])                  # (channels, frames, n_fft), views
        work = self.buffer("frames", rows.shape[1:], np.float32)
        for row, dest in zip(rows, out.reshape(-1, *out.shape[-2:])):
            np.multiply(row, self._analysis, out=work)
            np.fft.rfft(work, axis=-1, norm="forward", out=dest)
        return out

    def buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A scratch array kept between calls (reallocated when the shape changes): segments of one
        length reuse the same pages instead of faulting in fresh ones (and growing the heap) every
        time. Callers on the same thread share them by name: "frames" (frames, n_fft) float32 is
        the STFT's own; "bins" (frames, freq) float32 the caller's."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype)
        return buf

    __call__ = forward

    def _envelope(self, n_frames: int) -> np.ndarray:
        """Summed squared window over ``n_frames`` frames, float32."""
        sq = np.broadcast_to(self.window ** 2, (n_frames, self.n_fft))
        return self._overlap_add(sq, n_frames)

    def _inverse_envelope(self, n_frames: int) -> np.ndarray:
        """1 / the summed squared window over ``n_frames`` frames, 0 where it is below torch.istft's
        floor; float32, cached per frame count. A multiply instead of a masked divide per channel."""
        inv = self._inverse_envelopes.get(n_frames)
        if inv is None:
            env = self._envelope(n_frames)
            keep = env > _ENVELOPE_FLOOR
            inv = np.zeros_like(env)
            np.divide(np.float32(1.0), env, out=inv, where=keep)
            self._inverse_envelopes = {n_frames: inv}  # one entry: segments mostly share a length
        return inv

    def _overlap_add(self, frames: np.ndarray, n_frames: int, out: np.ndarray | None = None) -> np.ndarray:
        """(..., frames, n_fft) -> (..., n_fft + hop * (frames - 1)) summed at hop spacing (into ``out``)."""
        hop, n_fft = self.hop_length, self.n_fft
        if out is None:
            out = np.empty(frames.shape[:-2] + (n_fft + hop * (n_frames - 1),), dtype=np.float32)
        if n_fft % hop == 0:
            # each frame as n_fft/hop slices of one hop: slice j of frame t lands at block t + j,
            # so the whole sum is n_fft/hop vectorised adds, the first of them a copy (no zeroing pass)
            blocks = out.reshape(*out.shape[:-1], -1, hop)  # a view: out is hop * (frames - 1 + n_fft / hop) long
            parts = frames.reshape(*frames.shape[:-1], n_fft // hop, hop)
            blocks[..., :n_frames, :] = parts[..., 0, :]
            blocks[..., n_frames:, :] = 0.0
            for j in range(1, n_fft // hop):
                blocks[..., j: j + n_frames, :] += parts[..., j, :]
        else:
            out[...] = 0.0
            for t in range(n_frames):
                out[..., t * hop: t * hop + n_fft] += frames[..., t, :]
        return out

    def inverse(self, spec: np.ndarray, length: int) -> np.ndarray:
        """(..., freq, frames) complex -> (..., length) float32."""
        return self.frames_inverse(np.swapaxes(spec, -1, -2), length)

    def frames_inverse(self, spec: np.ndarray, length: int, out: np.ndarray | None = None) -> np.ndarray:
        """(..., frames, freq) complex (frame-major, as ``frames_forward`` gives) -> (..., length)
        float32, written into ``out`` when given; one channel at a time through kept buffers."""
        n_frames = spec.shape[-2]
        if out is None:
            out = np.empty(spec.shape[:-2] + (length,), np.float32)
        _check_out(out)
        inv_env = self._inverse_envelope(n_frames)
        frames = self.buffer("frames", (n_frames, self.n_fft), np.float32)
        summed = self.buffer("summed", (self.n_fft + self.hop_length * (n_frames - 1),), np.float32)
        start = self.n_fft // 2
        end = min(start + length, summed.shape[-1])
        for row, dest in zip(spec.reshape(-1, *spec.shape[-2:]), out.reshape(-1, out.shape[-1])):
            np.fft.irfft(row, n=self.n_fft, axis=-1, out=frames)      # (frames, n_fft)
            frames *= self.window
            self._overlap_add(frames, n_frames, out=summed)
            np.multiply(summed[start:end], inv_env[start:end], out=dest[: end - start])
            dest[end - start:] = 0.0  # torch.istft pads with zeros past the last frame
        return out
