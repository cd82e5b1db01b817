"""Open-Unmix (UMX): one BiLSTM network per stem, each estimating its stem's magnitude spectrogram.

Shape letters: B batch, C channels, F frequency bins, Fb the bins the network reads
(max_bin), T frames, S stems, H hidden size.

Each stem's network reads the mixture magnitude below ``max_bin`` (about 16 kHz), shifts and
scales it per bin (``input_mean``, ``input_scale``; raw magnitudes, no log), encodes every
frame to H features (fc1, bn1, tanh), runs a 3-layer BiLSTM over the frames, concatenates its
output with its input (skip connection), decodes to every bin and channel (fc2, bn2, relu,
fc3, bn3), scales and shifts per bin (``output_scale``, ``output_mean``), and multiplies the
rectified result by the mixture magnitude: the output is the stem's magnitude estimate, not a
mask in [0, 1]. After Stöter et al., "Open-Unmix - A Reference Implementation for Music
Source Separation" (JOSS 2019).

Weights. Every per-stem network's parameter names are the publisher's: the state dict of
stem ``i`` (vocals, drums, ... in ``config.stems`` order) is the publisher's ``<stem>.pth``
with each key prefixed by ``targets.<i>.``. (Files written by open-unmix 1.0 also hold
``sample_rate`` and STFT window tensors, which this model has no use for; the format adapter
drops them.)

Training. It trains like any family (gradient steps on the magnitudes, MSE), but it keeps its
own raw-magnitude input normalisation: the trainer's log1p statistics are not applied.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.registry import register


@dataclass
class OpenUnmixParams:
    """Open-Unmix's per-stem BiLSTM (umxhq: hidden_size 512, umxl: 1024)."""

    hidden_size: int = 512
    num_layers: int = 3
    max_bin: int = 1487  # 16 kHz at n_fft 4096 / 44.1 kHz, the published models' bandwidth
    unidirectional: bool = False  # a causal LSTM instead of the BiLSTM
    dropout: float = 0.4  # between LSTM layers, in training only


class OpenUnmixTarget(nn.Module):
    """One stem's network: (T, B, C, F) mixture magnitude -> (B, C, F, T) the stem's magnitude."""

    def __init__(self, params: OpenUnmixParams, *, n_bins: int, n_channels: int):
        super().__init__()
        h, fb = params.hidden_size, params.max_bin
        self.max_bin, self.hidden_size = fb, h
        # --- encoder: the band below max_bin, all channels, to H features per frame
        self.fc1 = nn.Linear(fb * n_channels, h, bias=False)
        self.bn1 = nn.BatchNorm1d(h)
        # --- the recurrent core, frames first (batch_first=False), as the publisher's
        lstm_size = h if params.unidirectional else h // 2
        self.lstm = nn.LSTM(input_size=h, hidden_size=lstm_size, num_layers=params.num_layers,
                            bidirectional=not params.unidirectional, batch_first=False,
                            dropout=params.dropout if params.num_layers > 1 else 0.0)
        # --- decoder: encoder output and LSTM output together, to every bin and channel
        self.fc2 = nn.Linear(2 * h, h, bias=False)
        self.bn2 = nn.BatchNorm1d(h)
        self.fc3 = nn.Linear(h, n_bins * n_channels, bias=False)
        self.bn3 = nn.BatchNorm1d(n_bins * n_channels)
        # --- per-bin affine maps of the input and the output (the publisher's names and starts)
        self.input_mean = nn.Parameter(torch.zeros(fb))
        self.input_scale = nn.Parameter(torch.ones(fb))
        self.output_scale = nn.Parameter(torch.ones(n_bins))
        self.output_mean = nn.Parameter(torch.ones(n_bins))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(T, B, C, F) mixture magnitude -> (B, C, F, T) this stem's magnitude estimate."""
        t, b, c, f = mix.shape
        x = mix[..., : self.max_bin] + self.input_mean
        x = x * self.input_scale                                          # (T, B, C, Fb)
        x = self.bn1(self.fc1(x.reshape(-1, c * self.max_bin)))           # (T*B, H)
        x = torch.tanh(x.reshape(t, b, self.hidden_size))                 # (T, B, H)
        x = torch.cat([x, self.lstm(x)[0]], dim=-1)                       # (T, B, 2H)
        x = torch.relu(self.bn2(self.fc2(x.reshape(-1, 2 * self.hidden_size))))  # (T*B, H)
        x = self.bn3(self.fc3(x)).reshape(t, b, c, f)                     # (T, B, C, F)
        x = x * self.output_scale + self.output_mean
        return (torch.relu(x) * mix).permute(1, 2, 3, 0)


@register("open_unmix")
class OpenUnmix(SeparationModel):
    """Magnitude (B, C, F, T) -> stem magnitudes (B, S, C, F, T), one network per stem."""

    params_class = OpenUnmixParams
    input_kind, output_kind, target, default_loss = "magnitude", "spectrograms", "magnitude", "mse"

    @classmethod
    def check_params(cls, params: OpenUnmixParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.hidden_size < 2 or (params.hidden_size % 2 and not params.unidirectional):
            raise ConfigError(f"model.hidden_size: {params.hidden_size} must be even and >= 2 "
                              "(a BiLSTM splits it over two directions)")
        if params.num_layers < 1:
            raise ConfigError(f"model.num_layers: must be >= 1, got {params.num_layers}")
        if not 0 < params.max_bin <= n_bins:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be in [1, {n_bins}] (the STFT's bins)")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")

    def __init__(self, params: OpenUnmixParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.targets = nn.ModuleList(OpenUnmixTarget(params, n_bins=n_bins, n_channels=n_channels)
                                     for _ in range(n_stems))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) mixture magnitude -> (B, S, C, F, T) stem magnitude estimates."""
        frames_first = mag.permute(3, 0, 1, 2)                            # (T, B, C, F)
        return torch.stack([target(frames_first) for target in self.targets], dim=1)
