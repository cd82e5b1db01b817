"""Binary-mask CNN after the seed study (Lviv Polytechnic, MUSDB18).

The study's network looks at a 25-frame window of a 513-bin magnitude spectrogram and
predicts a mask for the centre frame. Run one window at a time that is a forward pass per
frame; here the same network is written fully convolutionally so that every frame's window
is evaluated in one pass:

* the 3x3 convolutions are unpadded along time, so each output frame only ever sees its
  own window (4 layers shrink the window from 25 to 17 frames);
* max-pooling is applied along frequency only, which keeps the time axis shift-equivariant;
* the first "linear" layer is a convolution whose kernel covers the whole remaining
  (channels, freq, 17 frames) window, i.e. exactly a dense layer on the flattened window;
* the second linear layer is a 1x1 convolution to one sigmoid output per bin.

The result equals the per-window network frame for frame, and its receptive field is
exactly ``context_frames`` frames, which the chunked engine's seam test relies on.

There is one independent network per stem (about 0.3M parameters each at the default
size). They run as one grouped network: group ``s`` of every layer holds stem ``s``'s
weights, so no weight is shared between stems, but each layer is one call instead of four.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register


@dataclass
class MaskCNNParams:
    """Seed-study CNN: a context window of frames -> the centre frame's binary mask."""

    context_frames: int = 25
    conv_channels: list[int] = field(default_factory=lambda: [8, 16, 16, 16])
    hidden_size: int = 32
    dropout: float = 0.25
    leaky_slope: float = 0.01


def _pool_freq(h: torch.Tensor) -> torch.Tensor:
    """Max-pool by 2 along frequency (dim 2); (N, C, F, T) -> (N, C, F // 2, T)."""
    k = h.shape[2] // 2
    return torch.maximum(h[:, :, 0 : 2 * k : 2], h[:, :, 1 : 2 * k : 2])


@register("mask_cnn")
class MaskCNN(SeparationModel):
    """Magnitude (B, C, F, T) -> binary-mask probabilities (B, S, C, F, T); trained with BCE on logits."""

    params_class = MaskCNNParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "binary_mask", "bce"
    has_logits = True

    @classmethod
    def check_params(cls, params: MaskCNNParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.context_frames % 2 == 0:
            raise ConfigError("model.context_frames: must be odd so that there is a centre frame")
        if not params.conv_channels or min(params.conv_channels) < 1:
            raise ConfigError("model.conv_channels: needs at least one layer, each with >= 1 channel")
        if params.context_frames - 2 * len(params.conv_channels) < 1:
            raise ConfigError(f"model.context_frames: {params.context_frames} is too small for "
                              f"{len(params.conv_channels)} conv layers (each takes 2 frames); use at least "
                              f"{2 * len(params.conv_channels) + 1}")
        if n_bins >> len(params.conv_channels) < 1:
            raise ConfigError(f"model.conv_channels: {len(params.conv_channels)} layers halve the {n_bins} "
                              "STFT bins to nothing; use fewer layers or a larger stft.n_fft")
        if params.hidden_size < 1 or not 0 <= params.dropout < 1:
            raise ConfigError("model.hidden_size must be >= 1 and model.dropout in [0, 1)")

    def context_frames(self) -> int:
        return self.context // 2

    def __init__(self, params: MaskCNNParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.context = params.context_frames
        self.slope = params.leaky_slope
        self.norm = BinNorm(n_bins)

        # --- conv blocks: 3x3 conv (padded in freq only), max-pool over freq, LeakyReLU
        self.convs = nn.ModuleList()
        in_ch, groups, bins = 1, 1, n_bins
        for ch in params.conv_channels:
            self.convs.append(nn.Conv2d(in_ch, n_stems * ch, kernel_size=3, padding=(1, 0),
                                        groups=groups))
            in_ch, groups, bins = n_stems * ch, n_stems, bins // 2
        frames_left = params.context_frames - 2 * len(params.conv_channels)
        self._feat = (params.conv_channels[-1], bins)

        # --- dense head: fc1 sees a stem's whole (channels x bins x frames_left) window
        self.dropout = nn.Dropout(params.dropout)
        self.fc1 = nn.Conv1d(n_stems * params.conv_channels[-1] * bins, n_stems * params.hidden_size,
                             kernel_size=frames_left, groups=n_stems)
        self.fc2 = nn.Conv1d(n_stems * params.hidden_size, n_stems * n_bins, kernel_size=1,
                             groups=n_stems)

    def forward_logits(self, mag: torch.Tensor) -> torch.Tensor:
        """(batch, channels, freq, frames) magnitude -> (batch, stems, channels, freq, frames) logits.

        Channels are separated independently, as in the study's mono model.
        """
        b, c, f, t = mag.shape
        x = self.norm(mag).reshape(b * c, 1, f, t)
        half = self.context // 2
        # Frames past the ends see zero (the normalised mean) as context, like a padded window.
        h = F.pad(x, (half, half))
        for conv in self.convs:
            # pooling before the activation is the same as after it: LeakyReLU is monotonic
            h = F.leaky_relu(_pool_freq(conv(h)), self.slope)
        n, _, bins, frames = h.shape
        # (N, S*C', bins, T') -> (N, S*C'*bins, T'): each group's block is one stem's features
        h = h.reshape(n, self.n_stems * self._feat[0] * bins, frames)
        h = F.leaky_relu(self.fc1(self.dropout(h)), self.slope)
        out = self.fc2(self.dropout(h))                              # (b*c, S*F, T)
        return out.reshape(b, c, self.n_stems, f, t).transpose(1, 2)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(batch, channels, freq, frames) -> (batch, stems, channels, freq, frames) masks in [0, 1]."""
        return torch.sigmoid(self.forward_logits(mag))
