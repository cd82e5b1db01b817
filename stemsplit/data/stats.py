"""Per-frequency-bin statistics of ``log1p(|STFT|)``, the numbers models normalise their input by.

The STFT is ``stemsplit.audio.stft.STFT``, the one the models and the engine use. Long signals
are processed in blocks, each framed on its own (``center=True``), so that a four-minute track
never needs its whole spectrogram in memory; the block edges change the figures by far less
than they vary between tracks.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from stemsplit.audio.stft import STFT
from stemsplit.config import STFTConfig

# Frames per STFT block: bounds memory to about 2049 bins x 256 frames x 8 bytes per channel.
_BLOCK_FRAMES = 256


class StatsAccumulator:
    """Running per-bin mean and standard deviation of ``log1p(|STFT|)`` (float64 sums)."""

    def __init__(self, n_fft: int, hop_length: int):
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.stft = STFT(STFTConfig(n_fft=n_fft, hop_length=hop_length))
        n_bins = self.stft.n_bins
        self.total = torch.zeros(n_bins, dtype=torch.float64)
        self.total_sq = torch.zeros(n_bins, dtype=torch.float64)
        self.frames = 0

    def add(self, audio: np.ndarray) -> None:
        """audio: (channels, time) float; every channel counts as its own signal."""
        wav = torch.from_numpy(np.array(audio, dtype=np.float32))  # a copy: memmaps are read-only
        wav = wav.reshape(-1, wav.shape[-1])
        block = _BLOCK_FRAMES * self.hop_length
        for start in range(0, wav.shape[-1], block):
            piece = wav[:, start:start + block]
            if piece.shape[-1] < 2:
                continue
            logmag = torch.log1p(self.stft(piece).abs()).to(torch.float64)  # (channels, bins, frames)
            self.total += logmag.sum(dim=(0, 2))
            self.total_sq += (logmag * logmag).sum(dim=(0, 2))
            self.frames += logmag.shape[0] * logmag.shape[2]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (n_bins,), std (n_bins,)) float32; std is floored so that 1/std stays finite."""
        if self.frames == 0:
            raise ValueError("no audio was added to the statistics")
        mean = self.total / self.frames
        var = (self.total_sq / self.frames - mean * mean).clamp_min(0.0)
        std = var.sqrt().clamp_min(1e-5)
        return mean.numpy().astype(np.float32), std.numpy().astype(np.float32)


def compute_magnitude_stats(signals: Iterable[np.ndarray], n_fft: int,
                            hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin (mean, std) of log1p(|STFT|) over all frames of all ``signals`` (channels, time)."""
    acc = StatsAccumulator(n_fft, hop_length)
    for audio in signals:
        acc.add(audio)
    return acc.result()
