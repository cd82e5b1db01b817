"""Waveform FNN: a feed-forward network from a window of raw mixture samples to the same window
of each stem, with overlap-add (the learning study's own model).

Shape letters: B batch, C channels, L samples, N windows, W window length, S stems.

The mixture is cut into windows of ``window`` samples every ``window / 2`` samples. Each
channel's window goes through the same network (so mono and stereo share weights), which
gives ``S`` windows of stem samples. Each output window is weighted by a periodic Hann window
and added at its place: at 50 % overlap two Hann windows sum to exactly one, so the windows
cross-fade without seams and any length works. The signal is padded by half a window on each
side, so every sample lies under two windows.

Each window is divided by its RMS before the network and the output multiplied by it again:
the network sees every window at the same level, so it learns shapes, not loudness.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.registry import register


@dataclass
class WaveformFNNParams:
    """Window length and hidden layers of the feed-forward network."""

    window: int = 1024  # samples per window (even); windows overlap by half
    hidden_sizes: list[int] = field(default_factory=lambda: [512, 512])
    dropout: float = 0.1


def frame(wav: torch.Tensor, window: int) -> tuple[torch.Tensor, int]:
    """(B, C, L) -> windows (B, C, N, W) every W/2 samples over the padded signal, and L.

    Written with reshape and concatenation rather than ``unfold`` (and ``overlap_add`` rather
    than ``F.fold``) so that the ONNX export (opset 17, dynamic length) can trace it: the padded
    signal is N + 1 blocks of W/2 samples, and window n is blocks n and n + 1.
    """
    hop = window // 2
    length = wav.shape[-1]
    n = -(-length // hop) + 1  # windows that cover [0, L) twice, with half a window of padding
    padded = F.pad(wav, (hop, (n + 1) * hop - length - hop))
    blocks = padded.reshape(*padded.shape[:-1], -1, hop)               # (B, C, N + 1, W/2)
    return torch.cat([blocks[..., :-1, :], blocks[..., 1:, :]], dim=-1), length


def overlap_add(frames: torch.Tensor, length: int) -> torch.Tensor:
    """(..., N, W) Hann-weighted windows every W/2 samples -> (..., L), the padding removed.

    With the periodic Hann window, a sequence of windows of one signal adds back to that
    signal exactly: ``overlap_add(frame(x) * hann, L) == x``.
    """
    hop = frames.shape[-1] // 2
    # output block j (W/2 samples) = first half of window j + second half of window j - 1
    head = F.pad(frames[..., :hop], (0, 0, 0, 1))                     # (..., N + 1, W/2)
    tail = F.pad(frames[..., hop:], (0, 0, 1, 0))
    return (head + tail).flatten(-2)[..., hop: hop + length]


@register("waveform_fnn")
class WaveformFNN(SeparationModel):
    """Waveform (B, C, L) -> stems (B, S, C, L); trained on the waveforms with L1."""

    params_class = WaveformFNNParams
    input_kind, output_kind, target, default_loss = "waveform", "waveforms", "waveform", "l1"

    @classmethod
    def check_params(cls, params: WaveformFNNParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.window < 4 or params.window % 2:
            raise ConfigError(f"model.window: {params.window} must be even and >= 4 (windows overlap by half)")
        if not params.hidden_sizes or min(params.hidden_sizes) < 1:
            raise ConfigError("model.hidden_sizes: needs at least one layer, each with >= 1 unit")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")

    def __init__(self, params: WaveformFNNParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.window = params.window
        layers, width = [], params.window
        for size in params.hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(params.dropout)]
            width = size
        layers.append(nn.Linear(width, n_stems * params.window))
        self.net = nn.Sequential(*layers)
        self.register_buffer("hann", torch.hann_window(params.window, periodic=True), persistent=False)

    def context_frames(self) -> None:
        # The model's reach is one window (in samples, not STFT frames); the configured segment
        # overlap, far wider than any window, decides the seams.
        return None

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, C, L) mixture -> (B, S, C, L) stems."""
        b, c, _ = wav.shape
        windows, length = frame(wav, self.window)                      # (B, C, N, W)
        rms = windows.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-5)
        n = windows.shape[2]
        out = self.net(windows / rms).reshape(b, c, n, self.n_stems, self.window) * rms[..., None]
        out = out.permute(0, 3, 1, 2, 4) * self.hann                  # (B, S, C, N, W)
        return overlap_add(out, length)                                # (B, S, C, L)
