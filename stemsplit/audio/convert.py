"""Channel layout, streaming resampling and clipping protection for (channels, time) numpy audio.

Resampling is libsoxr (the ``soxr`` package) at its high quality setting: the same filter
whether a whole track is resampled at once (``resample``: ``prepare``) or streamed block by
block (``StreamingResampler``: ``separate``), with identical samples either way.
"""
from __future__ import annotations

import numpy as np
import soxr

QUALITY = "HQ"  # libsoxr's high quality: 20-bit precision, passband to 91 % of Nyquist


def to_model_channels(block: np.ndarray, channels: int) -> np.ndarray:
    """(in_channels, time) -> (channels, time): mono is duplicated, extra channels dropped."""
    if block.shape[0] == channels:
        return block
    if block.shape[0] == 1:
        return np.broadcast_to(block, (channels, block.shape[-1]))
    if channels == 1:
        return block[:2].mean(axis=0, keepdims=True)
    return block[:channels]


def to_output_channels(block: np.ndarray, in_channels: int) -> np.ndarray:
    """(..., model_channels, time) -> the channel count the user gave us (mono stays mono)."""
    if in_channels == 1 and block.shape[-2] != 1:
        return block.mean(axis=-2, keepdims=True)
    return block


class StreamingResampler:
    """Resample an unbounded (channels, time) stream block by block; the output equals one
    ``resample`` call on the whole signal (libsoxr's stream keeps the filter state between blocks).

    The channel count is taken from the first block; every later block must have the same.
    """

    def __init__(self, orig_sr: int, new_sr: int):
        self.orig_sr, self.new_sr = int(orig_sr), int(new_sr)
        self._stream: soxr.ResampleStream | None = None
        self._channels = 0

    @property
    def identity(self) -> bool:
        return self.orig_sr == self.new_sr

    def process(self, block: np.ndarray) -> np.ndarray:
        """(channels, n) at orig_sr -> (channels, m) float32 at new_sr; m may be 0 while buffering."""
        block = np.asarray(block, dtype=np.float32)
        self._channels = block.shape[0]
        if self.identity:
            return block
        if self._stream is None:
            self._stream = soxr.ResampleStream(self.orig_sr, self.new_sr, self._channels, dtype="float32",
                                               quality=QUALITY)
        return self._stream.resample_chunk(np.ascontiguousarray(block.T)).T

    def flush(self) -> np.ndarray:
        """The remaining output: in all, round(n_in * new_sr / orig_sr) samples, as ``resample`` gives."""
        if self.identity or self._stream is None:
            return np.zeros((self._channels, 0), np.float32)
        out = self._stream.resample_chunk(np.zeros((0, self._channels), np.float32), last=True).T
        self._stream = None
        return out


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """One-shot resample of (..., time) float32."""
    x = np.asarray(x, dtype=np.float32)
    if orig_sr == new_sr:
        return x
    lead = x.shape[:-1]
    frames = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)     # (time, channels): soxr's layout
    out = soxr.resample(frames, int(orig_sr), int(new_sr), quality=QUALITY)
    return np.ascontiguousarray(out.T).reshape(*lead, -1)


CLIP_MODES = ("rescale", "clamp", "none")


def clip_gain(peak: float, mode: str) -> float:
    """The gain that ``rescale`` applies for a given peak (1.0 when nothing needs doing)."""
    if mode == "rescale" and peak > 1.0:
        return 0.999 / peak
    return 1.0


def protect(block: np.ndarray, mode: str, gain: float = 1.0) -> np.ndarray:
    """Apply a precomputed rescale gain, or clamp to [-1, 1]."""
    if gain != 1.0:
        block = block * np.float32(gain)
    if mode in ("rescale", "clamp"):
        block = block.clip(-1.0, 1.0)
    return block
