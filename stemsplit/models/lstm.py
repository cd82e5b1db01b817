"""Open-Unmix style BiLSTM mask model: one network for all stems, or one per stem.

Shape letters: B batch, C channels, F frequency bins, T frames, S stems, H hidden size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register


@dataclass
class LSTMParams:
    """Open-Unmix style BiLSTM mask model."""

    hidden_size: int = 256
    num_layers: int = 3
    max_bin: int = 1487  # ~16 kHz at n_fft 4096 / 44.1 kHz: the band the encoder sees
    dropout: float = 0.2
    # shared: one encoder, LSTM and decoder give every stem's mask. per_stem: one network per
    # stem (Open-Unmix's layout). bridged: per_stem, with the encodings and the LSTM outputs
    # averaged over the stems' networks before use (CrossNet-Open-Unmix's bridging paths)
    branches: str = "shared"


BRANCHES = ("shared", "per_stem", "bridged")


@register("lstm")
class LSTMSeparator(SeparationModel):
    """Magnitude (B, C, F, T) -> masks (B, S, C, F, T); trained on magnitudes with MSE."""

    params_class = LSTMParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "mse"

    @classmethod
    def check_params(cls, params: LSTMParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.hidden_size < 2 or params.hidden_size % 2:
            raise ConfigError(f"model.hidden_size: {params.hidden_size} must be even and >= 2 "
                              "(it is split over two directions)")
        if params.num_layers < 1:
            raise ConfigError(f"model.num_layers: must be >= 1, got {params.num_layers}")
        if not 0 < params.max_bin <= n_bins:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be in [1, {n_bins}] (the STFT's bins)")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")
        if params.branches not in BRANCHES:
            raise ConfigError(f"model.branches: {params.branches!r} is not one of {', '.join(BRANCHES)}")

    def __init__(self, params: LSTMParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.max_bin = min(params.max_bin, n_bins)

        # --- input normalisation, shared by every branch
        self.norm = BinNorm(self.max_bin)
        if params.branches == "shared":  # these attribute names are the shipped checkpoints' keys
            self.encoder, self.lstm, self.decoder = self._branch(params, n_stems, n_channels, n_bins)
        else:
            parts = [self._branch(params, 1, n_channels, n_bins) for _ in range(n_stems)]
            self.encoders, self.lstms, self.decoders = (nn.ModuleList(p) for p in zip(*parts))

    def _branch(self, params: LSTMParams, stems: int, n_channels: int, n_bins: int) -> tuple[nn.Module, ...]:
        """Encoder (band-limited to max_bin), 3-layer BiLSTM, decoder to ``stems`` full-band masks."""
        h = params.hidden_size
        encoder = nn.Sequential(nn.Linear(n_channels * self.max_bin, h, bias=False), nn.BatchNorm1d(h), nn.Tanh())
        lstm = nn.LSTM(h, h // 2, num_layers=params.num_layers, bidirectional=True, batch_first=True,
                       dropout=params.dropout if params.num_layers > 1 else 0.0)
        decoder = nn.Sequential(nn.Linear(2 * h, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(),
                                nn.Linear(h, stems * n_channels * n_bins))
        return encoder, lstm, decoder

    def _branches(self) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
        if self.params.branches == "shared":
            return [self.encoder], [self.lstm], [self.decoder]
        return list(self.encoders), list(self.lstms), list(self.decoders)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        b, c, f, t = mag.shape
        x = self.norm(mag[:, :, : self.max_bin])                      # (B, C, Fb, T)
        x = x.permute(0, 3, 1, 2).reshape(b * t, c * self.max_bin)    # (B*T, C*Fb)
        encoders, lstms, decoders = self._branches()
        bridged = self.params.branches == "bridged"
        codes = [enc(x).reshape(b, t, -1) for enc in encoders]        # per branch (B, T, H)
        if bridged:
            codes = [torch.stack(codes).mean(0)] * len(codes)
        outs = [lstm(code)[0] for lstm, code in zip(lstms, codes)]    # per branch (B, T, H)
        if bridged:
            outs = [torch.stack(outs).mean(0)] * len(outs)
        y = torch.cat([dec(torch.cat([code, out], dim=-1).reshape(b * t, -1))
                       for dec, code, out in zip(decoders, codes, outs)], dim=-1)  # (B*T, S*C*F), stem-major
        y = y.reshape(b, t, self.n_stems, c, f)
        return torch.sigmoid(y.permute(0, 2, 3, 4, 1))
