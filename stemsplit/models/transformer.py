"""Transformer: self-attention over time frames, with rotary positions.

Shape letters: B batch, C channels, F frequency bins, Fb bins the encoder sees (max_bin),
T frames, S stems, D model width, h heads.

Each frame (all channels' band-limited log magnitudes) becomes one token. Pre-norm encoder
layers let every frame attend to every other frame of the segment, so long-range repetition
(a chorus, a riff) can inform the mask. Positions are rotary (RoPE): queries and keys are
rotated by an angle proportional to their frame index, so an attention score depends only on
the distance between two frames, never on where the segment starts. Segments of any length
work, and a model trained on 6-s excerpts separates 10-s segments. A skip connection and a
dense decoder give one full-band mask per stem and channel, as in the lstm family.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register


@dataclass
class TransformerParams:
    """Encoder over frames: width, depth, heads; rotary positions."""

    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 8
    ff_size: int = 512
    max_bin: int = 1487  # ~16 kHz at n_fft 4096 / 44.1 kHz
    dropout: float = 0.1
    rope_base: float = 10000.0


def rotary_angles(frames: int, dim: int, base: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (frames, dim / 2), of the rotary angles position * base^(-2i/dim)."""
    inv = base ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    angles = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * inv[None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (..., T, dim) by position: pairs (x[2i], x[2i+1]) turn by angle[t, i]."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class RotaryEncoderLayer(nn.Module):
    """Pre-norm self-attention with rotary queries/keys, then a GELU feed-forward block."""

    def __init__(self, d_model: int, heads: int, ff_size: int, dropout: float, base: float):
        super().__init__()
        self.heads, self.base, self.dropout = heads, base, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_size), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_size, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_angles(t, d // self.heads, self.base, x.device, q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)     # (B, h, T, D/h)
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff(self.norm2(x)))


@register("transformer")
class FrameTransformer(SeparationModel):
    """Magnitude (B, C, F, T) -> masks (B, S, C, F, T); trained on magnitudes with MSE."""

    params_class = TransformerParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "mse"

    @classmethod
    def check_params(cls, params: TransformerParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.num_heads < 1 or params.d_model % params.num_heads or (params.d_model // params.num_heads) % 2:
            raise ConfigError(f"model.d_model: {params.d_model} must split into model.num_heads={params.num_heads} "
                              "heads of an even width (rotary positions turn pairs of values)")
        if params.num_layers < 1 or params.ff_size < 1:
            raise ConfigError("model.num_layers and model.ff_size: must be >= 1")
        if not 0 < params.max_bin <= n_bins:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be in [1, {n_bins}] (the STFT's bins)")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")
        if params.rope_base <= 1:
            raise ConfigError(f"model.rope_base: must be > 1, got {params.rope_base}")

    def __init__(self, params: TransformerParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        d = params.d_model
        self.max_bin = params.max_bin
        self.norm = BinNorm(self.max_bin)
        self.encoder = nn.Sequential(nn.Linear(n_channels * self.max_bin, d), nn.LayerNorm(d), nn.Tanh())
        self.layers = nn.ModuleList(RotaryEncoderLayer(d, params.num_heads, params.ff_size, params.dropout,
                                                       params.rope_base) for _ in range(params.num_layers))
        self.final_norm = nn.LayerNorm(d)
        self.decoder = nn.Sequential(
            nn.Linear(2 * d, d),
            nn.LayerNorm(d),
            nn.ReLU(),
            nn.Linear(d, n_stems * n_channels * n_bins),
        )

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        b, c, f, t = mag.shape
        x = self.norm(mag[:, :, : self.max_bin])                      # (B, C, Fb, T)
        x = self.encoder(x.permute(0, 3, 1, 2).reshape(b, t, c * self.max_bin))  # (B, T, D)
        y = x
        for layer in self.layers:
            y = layer(y)
        y = self.decoder(torch.cat([x, self.final_norm(y)], dim=-1))   # (B, T, S*C*F)
        return torch.sigmoid(y.reshape(b, t, self.n_stems, c, f).permute(0, 2, 3, 4, 1))
