"""A matched STFT / inverse-STFT pair built from one ``STFTConfig``.

Both directions use the same periodic Hann window and ``center=True`` framing, so
``inverse(forward(x), length=len(x))`` returns ``x`` to float precision (see tests).
"""
from __future__ import annotations

import torch

from stemsplit.config import STFTConfig


class STFT:
    def __init__(self, cfg: STFTConfig):
        """``cfg`` comes from a validated config (config.py checks that its window is 'hann')."""
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self._windows: dict[tuple, torch.Tensor] = {}

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def _window(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(self.n_fft, periodic=True, device=device, dtype=dtype)
        return self._windows[key]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(..., time) real -> (..., freq, frames) complex."""
        shape = wav.shape
        flat = wav.reshape(-1, shape[-1])
        pad_mode = "reflect" if shape[-1] > self.n_fft // 2 else "constant"
        spec = torch.stft(flat, self.n_fft, self.hop_length, window=self._window(wav.device, wav.dtype),
                          center=True, pad_mode=pad_mode, return_complex=True)
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    __call__ = forward

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """(..., freq, frames) complex -> (..., length) real."""
        shape = spec.shape
        flat = spec.reshape(-1, *shape[-2:])
        real_dtype = torch.float64 if spec.dtype == torch.complex128 else torch.float32
        wav = torch.istft(flat, self.n_fft, self.hop_length, window=self._window(spec.device, real_dtype),
                          center=True, length=length)
        return wav.reshape(*shape[:-2], length)

    def num_frames(self, length: int) -> int:
        return length // self.hop_length + 1
