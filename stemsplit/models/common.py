"""Pieces shared by the model files: input compression and per-bin normalisation."""
from __future__ import annotations

import torch
from torch import nn


class BinNorm(nn.Module):
    """log1p-compress a magnitude spectrogram and standardise each frequency bin.

    ``mean`` and ``scale`` start at 0 and 1 and are learned; training initialises them from
    the dataset's per-bin statistics of ``log1p(|STFT|)`` with ``set_stats``.
    """

    def __init__(self, n_bins: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(n_bins))
        self.scale = nn.Parameter(torch.ones(n_bins))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        n = self.mean.numel()
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype)[:n])
        self.scale.copy_(1.0 / torch.as_tensor(std, dtype=self.scale.dtype)[:n].clamp_min(1e-5))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(..., freq, frames) magnitude -> same shape, normalised log magnitude."""
        x = torch.log1p(mag)
        return (x - self.mean[:, None]) * self.scale[:, None]
