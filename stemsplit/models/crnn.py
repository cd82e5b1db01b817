"""CRNN: a 2-D convolutional front end over the magnitude spectrogram, recurrent layers over
time, and a fully connected head giving one mask per stem.

Shape letters: B batch, C channels, F frequency bins, Fb bins the network sees (max_bin),
T frames, S stems, H hidden size, K conv channels.

The convolutions (3x3, padded, so every frame keeps its place) learn local time-frequency
patterns (onsets, harmonics); each block pools frequency by ``pool`` so that the recurrent
layers see a short feature vector per frame; the bidirectional GRU carries context over time;
the head maps every frame to full-band masks, as the lstm family's decoder does.

``causal: true`` makes it a streaming model: each convolution sees the current and the two
previous frames only (zeros before the first), and the GRU runs forward only (H wide). Output
frame t then depends on frames <= t, and ``forward_stream`` carries each conv block's last two
input frames and the GRU's hidden state from one block of frames to the next.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register


@dataclass
class CRNNParams:
    """Conv blocks (channels per block), then a BiGRU, then a dense mask head."""

    conv_channels: list[int] = field(default_factory=lambda: [8, 16, 32])
    pool: int = 4  # frequency max-pooling after each conv block
    max_bin: int = 1024  # the conv front end sees bins [0, max_bin); the head outputs every bin
    hidden_size: int = 256  # GRU output width (split over two directions)
    num_layers: int = 2
    dropout: float = 0.2
    causal: bool = False  # past-only convolutions and a forward GRU: a streaming model


@register("crnn")
class CRNN(SeparationModel):
    """Magnitude (B, C, F, T) -> masks (B, S, C, F, T); trained on magnitudes with MSE."""

    params_class = CRNNParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "mse"

    @classmethod
    def check_params(cls, params: CRNNParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if not params.conv_channels or min(params.conv_channels) < 1:
            raise ConfigError("model.conv_channels: needs at least one block, each with >= 1 channel")
        if params.pool < 1:
            raise ConfigError(f"model.pool: must be >= 1, got {params.pool}")
        if not 0 < params.max_bin <= n_bins:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be in [1, {n_bins}] (the STFT's bins)")
        if params.max_bin // params.pool ** len(params.conv_channels) < 1:
            raise ConfigError(f"model.max_bin: {params.max_bin} bins pooled by {params.pool} in "
                              f"{len(params.conv_channels)} blocks leave none; lower model.pool or use fewer blocks")
        if params.hidden_size < 2 or (params.hidden_size % 2 and not params.causal):
            raise ConfigError(f"model.hidden_size: {params.hidden_size} must be even and >= 2 "
                              "(it is split over two directions)")
        if params.num_layers < 1:
            raise ConfigError(f"model.num_layers: must be >= 1, got {params.num_layers}")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")

    def __init__(self, params: CRNNParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        h = params.hidden_size
        self.max_bin = params.max_bin
        self.norm = BinNorm(self.max_bin)

        # --- conv front end: 3x3 conv, batch norm, ReLU, max-pool along frequency only. Padded by
        # one frame on each side, or, causal, by two past frames (added in _convs, so that a stream
        # can supply the real past frames instead of zeros)
        blocks, in_ch, bins = [], n_channels, self.max_bin
        time_pad = 0 if params.causal else 1
        for ch in params.conv_channels:  # one flat Sequential: the shipped checkpoint's keys
            blocks += [nn.Conv2d(in_ch, ch, kernel_size=3, padding=(1, time_pad), bias=False), nn.BatchNorm2d(ch),
                       nn.ReLU(), nn.MaxPool2d(kernel_size=(params.pool, 1))]
            in_ch, bins = ch, bins // params.pool
        self.convs = nn.Sequential(*blocks)
        features = in_ch * bins
        self.project = nn.Sequential(nn.Linear(features, h), nn.LayerNorm(h), nn.Tanh())

        # --- recurrent layers over time: H wide in all (split over two directions unless causal)
        self.rnn = nn.GRU(h, h if params.causal else h // 2, num_layers=params.num_layers,
                          bidirectional=not params.causal, batch_first=True,
                          dropout=params.dropout if params.num_layers > 1 else 0.0)
        # --- fully connected head: one full-band mask per stem and channel
        self.head = nn.Sequential(
            nn.Dropout(params.dropout),
            nn.Linear(2 * h, h),
            nn.ReLU(),
            nn.Linear(h, n_stems * n_channels * n_bins),
        )

    def _blocks(self) -> list[nn.Sequential]:
        """The conv blocks: conv, batch norm, ReLU, pool each."""
        return [self.convs[i:i + 4] for i in range(0, len(self.convs), 4)]

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        return self._masks(mag, None)[0]

    def _masks(self, mag: torch.Tensor, state: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, list]:
        """Masks and the state after these frames (causal; ``state`` None: zeros before them)."""
        b, c, f, t = mag.shape
        x = self.norm(mag[:, :, : self.max_bin])                          # (B, C, Fb, T)
        after = []
        for i, block in enumerate(self._blocks()):
            if self.params.causal:
                past = (x.new_zeros(x.shape[:3] + (2,)) if state is None else state[i])
                x = torch.cat([past, x], dim=-1)                          # (B, K, F', 2 + T)
                after.append(x[..., -2:])
            x = block(x)                                                  # (B, K', F'/pool, T)
        x = x.permute(0, 3, 1, 2).reshape(b, t, -1)                      # (B, T, K*Fb')
        x = self.project(x)                                              # (B, T, H)
        hidden = None if state is None or not self.params.causal else state[-1]
        y, last = self.rnn(x, hidden)                                    # (B, T, H)
        after.append(last)
        y = self.head(torch.cat([x, y], dim=-1))                         # (B, T, S*C*F)
        return torch.sigmoid(y.reshape(b, t, self.n_stems, c, f).permute(0, 2, 3, 4, 1)), after

    # --- streaming (causal: true) --------------------------------------------------------

    def is_causal(self) -> bool:
        return self.params.causal

    def stream_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Each conv block's two past input frames (B, K, F', 2), then the GRU's (layers, B, H)."""
        if not self.params.causal:
            return super().stream_state(batch)
        weight = self.norm.mean
        shapes, ch, bins = [], self.n_channels, self.max_bin
        for block in self._blocks():
            shapes.append((batch, ch, bins, 2))
            ch, bins = block[0].out_channels, bins // self.params.pool
        shapes.append((self.params.num_layers, batch, self.params.hidden_size))
        return tuple(torch.zeros(s, dtype=weight.dtype, device=weight.device) for s in shapes)

    def forward_stream(self, mag: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, C, F, T) frames and the state before them -> (masks (B, S, C, F, T), *state after)."""
        if not self.params.causal:
            return super().forward_stream(mag, *state)
        masks, after = self._masks(mag, state)
        return (masks, *after)
