"""Open-Unmix style BiLSTM mask model, one shared network for all stems.

Shape letters: B batch, C channels, F frequency bins, T frames, S stems, H hidden size.
"""
from __future__ import annotations

import torch
from torch import nn

from stemsplit.config import LSTMParams
from stemsplit.models.common import BinNorm


class LSTMSeparator(nn.Module):
    def __init__(self, params: LSTMParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__()
        h = params.hidden_size
        if h % 2:
            raise ValueError("model.hidden_size must be even (it is split over two directions)")
        self.n_bins, self.n_channels, self.n_stems = n_bins, n_channels, n_stems
        self.max_bin = min(params.max_bin, n_bins)

        # --- input normalisation and encoder (band-limited to max_bin)
        self.norm = BinNorm(self.max_bin)
        self.encoder = nn.Sequential(
            nn.Linear(n_channels * self.max_bin, h, bias=False),
            nn.BatchNorm1d(h),
            nn.Tanh(),
        )
        # --- recurrent core: 3-layer BiLSTM whose output is concatenated with its input
        self.lstm = nn.LSTM(h, h // 2, num_layers=params.num_layers, bidirectional=True,
                            batch_first=True, dropout=params.dropout if params.num_layers > 1 else 0.0)
        # --- decoder to one full-band mask per stem and channel
        self.decoder = nn.Sequential(
            nn.Linear(2 * h, h, bias=False),
            nn.BatchNorm1d(h),
            nn.ReLU(),
            nn.Linear(h, n_stems * n_channels * n_bins),
        )

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        b, c, f, t = mag.shape
        x = self.norm(mag[:, :, : self.max_bin])                      # (B, C, Fb, T)
        x = x.permute(0, 3, 1, 2).reshape(b * t, c * self.max_bin)    # (B*T, C*Fb)
        x = self.encoder(x).reshape(b, t, -1)                         # (B, T, H)
        y, _ = self.lstm(x)                                            # (B, T, H)
        y = torch.cat([x, y], dim=-1).reshape(b * t, -1)              # (B*T, 2H)
        y = self.decoder(y).reshape(b, t, self.n_stems, c, f)
        return torch.sigmoid(y.permute(0, 2, 3, 4, 1))
