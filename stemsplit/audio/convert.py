"""Channel layout, streaming resampling and clipping protection for (channels, time) audio."""
from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

# torchaudio's defaults, repeated here because the streaming context depends on them
_LOWPASS_WIDTH = 6
_ROLLOFF = 0.99


def to_model_channels(block: torch.Tensor, channels: int) -> torch.Tensor:
    """(in_channels, time) -> (channels, time): mono is duplicated, extra channels dropped."""
    if block.shape[0] == channels:
        return block
    if block.shape[0] == 1:
        return block.expand(channels, -1)
    if channels == 1:
        return block[:2].mean(dim=0, keepdim=True)
    return block[:channels]


def to_output_channels(block: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(..., model_channels, time) -> the channel count the user gave us (mono stays mono)."""
    if in_channels == 1 and block.shape[-2] != 1:
        return block.mean(dim=-2, keepdim=True)
    return block


class StreamingResampler:
    """Resample an unbounded stream block by block with the same result as one torchaudio call.

    Each step resamples the buffered input with ``context`` extra samples on both sides and
    keeps only the middle, whose every output sample had its full filter support. Segment
    starts are kept on multiples of ``orig / gcd`` so the output grid never drifts.
    """

    def __init__(self, orig_sr: int, new_sr: int):
        self.orig_sr, self.new_sr = int(orig_sr), int(new_sr)
        g = math.gcd(self.orig_sr, self.new_sr)
        self.o, self.n = self.orig_sr // g, self.new_sr // g
        width = math.ceil(_LOWPASS_WIDTH * self.o / (_ROLLOFF * min(self.o, self.n)))
        self.context = (math.ceil(width / self.o) + 1) * self.o
        self._buf: torch.Tensor | None = None
        self._shape: tuple = (0,)
        self._seen_in = 0
        self._emitted = 0

    @property
    def identity(self) -> bool:
        return self.o == self.n

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return AF.resample(x, self.o, self.n, lowpass_filter_width=_LOWPASS_WIDTH, rolloff=_ROLLOFF)

    def process(self, block: torch.Tensor) -> torch.Tensor:
        """(channels, n) at orig_sr -> (channels, m) at new_sr; m may be 0 while buffering."""
        self._shape = block.shape[:-1]
        if self.identity:
            return block
        self._seen_in += block.shape[-1]
        if self._buf is None:  # the signal starts with silence, as in a one-shot call
            self._buf = block.new_zeros(*block.shape[:-1], self.context)
        self._buf = torch.cat([self._buf, block], dim=-1)
        ready = (self._buf.shape[-1] - 2 * self.context) // self.o * self.o
        if ready <= 0:
            return block.new_zeros(*block.shape[:-1], 0)
        seg = self._buf[..., : ready + 2 * self.context]
        lo = self.context * self.n // self.o
        out = self._resample(seg)[..., lo : lo + ready * self.n // self.o]
        self._buf = self._buf[..., ready:]
        self._emitted += out.shape[-1]
        return out

    def flush(self) -> torch.Tensor:
        """The remaining output; the total length is ceil(n_in * new_sr / orig_sr)."""
        if self.identity or self._buf is None:
            return torch.zeros(*self._shape, 0)
        total = math.ceil(self._seen_in * self.n / self.o)
        tail = self._buf.shape[-1] - self.context
        pad = self.context + (-tail) % self.o
        seg = torch.nn.functional.pad(self._buf, (0, pad))
        lo = self.context * self.n // self.o
        out = self._resample(seg)[..., lo:]
        out = out[..., : total - self._emitted]
        self._emitted += out.shape[-1]
        self._buf = None
        return out


def resample(x: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """One-shot resample of (..., time)."""
    if orig_sr == new_sr:
        return x
    return AF.resample(x, orig_sr, new_sr, lowpass_filter_width=_LOWPASS_WIDTH, rolloff=_ROLLOFF)


CLIP_MODES = ("rescale", "clamp", "none")


def clip_gain(peak: float, mode: str) -> float:
    """The gain that ``rescale`` applies for a given peak (1.0 when nothing needs doing)."""
    if mode == "rescale" and peak > 1.0:
        return 0.999 / peak
    return 1.0


def protect(block: torch.Tensor, mode: str, gain: float = 1.0) -> torch.Tensor:
    """Apply a precomputed rescale gain, or clamp to [-1, 1]; works on numpy arrays and tensors."""
    if gain != 1.0:
        block = block * gain
    if mode in ("rescale", "clamp"):
        block = block.clip(-1.0, 1.0)
    return block
