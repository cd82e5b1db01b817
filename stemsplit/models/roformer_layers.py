"""The building blocks of the RoFormer families (``roformer.py``): axial transformers over the
band features, the band split, the per-band mask heads and the mel band layout.

Shape letters: B batch, N sequence length (frames or bands), D feature size, H heads,
E head size, K bands, W a band's input width (its bins x channels x 2 for real and imaginary).

Module and parameter names follow the published Music-Source-Separation-Training (MSST)
checkpoints, so that their state dicts load as they are: ``to_qkv``, ``to_gates``,
``to_out.0``, ``net.<i>``, ``to_features.<k>``, ``to_freqs.<k>.0.<i>``, ``rotary_embed.freqs``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / |x| * sqrt(D) * gamma over the last axis (no epsilon beyond F.normalize's)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class Rotary(nn.Module):
    """Rotary position angles for one axis (time or bands), shared by that axis' attention layers.

    ``freqs`` (E/2,) is a buffer in the state dict (the published files carry it), the angle of
    position n and pair i being n * freqs[i]. Pairs are adjacent features (0, 1), (2, 3), ...
    """

    def __init__(self, dim_head: int, theta: float = 10000.0):
        super().__init__()
        exponents = torch.arange(0, dim_head, 2)[: dim_head // 2].float() / dim_head
        self.register_buffer("freqs", 1.0 / theta ** exponents)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, N, E) -> the same with each adjacent pair of features turned by its angle."""
        positions = torch.arange(x.shape[-2], device=x.device, dtype=x.dtype)
        angles = (positions[:, None] * self.freqs.to(x.dtype)).repeat_interleave(2, dim=-1)  # (N, E)
        pairs = x.unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * angles.cos() + turned * angles.sin()


class Attention(nn.Module):
    """Pre-norm multi-head self-attention with rotary positions and a sigmoid gate per head."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, rotary_embed: Rotary):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.rotary_embed = rotary_embed
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D), the residual branch (not yet added)."""
        x = self.norm(x)
        qkv = self.to_qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (3, B, H, N, E)
        q, k = self.rotary_embed.rotate(qkv[0]), self.rotary_embed.rotate(qkv[1])
        out = F.scaled_dot_product_attention(q, k, qkv[2], dropout_p=self.dropout if self.training else 0.0)
        out = out * self.to_gates(x).sigmoid().transpose(1, 2).unsqueeze(-1)  # (B, H, N, 1) gates
        return self.to_out(out.transpose(1, 2).flatten(-2))


class FeedForward(nn.Module):
    """Pre-norm MLP: RMSNorm, Linear (D -> mult D), GELU, Linear back."""

    def __init__(self, dim: int, dropout: float, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """``depth`` residual (attention, feed-forward) pairs over (B, N, D); an output RMSNorm where
    ``norm_output`` (Mel-Band RoFormer normalises every transformer, BS-RoFormer only at the end)."""

    def __init__(self, *, dim: int, depth: int, heads: int, dim_head: int, attn_dropout: float,
                 ff_dropout: float, rotary_embed: Rotary, norm_output: bool):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, attn_dropout, rotary_embed), FeedForward(dim, ff_dropout)])
            for _ in range(depth))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return self.norm(x)


class BandSplit(nn.Module):
    """(B, T, sum W) band inputs, band after band -> (B, T, K, D): each band's RMSNorm and Linear."""

    def __init__(self, dim: int, widths: list[int]):
        super().__init__()
        self.widths = list(widths)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(w), nn.Linear(w, dim)) for w in self.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.split(self.widths, dim=-1)
        return torch.stack([net(band) for net, band in zip(self.to_features, bands, strict=True)], dim=-2)


def _mlp(dim_in: int, dim_out: int, hidden: int, linear_layers: int) -> nn.Sequential:
    """``linear_layers`` Linear layers with Tanh between them: dim_in -> hidden ... -> dim_out."""
    sizes = [dim_in] + [hidden] * (linear_layers - 1) + [dim_out]
    layers: list[nn.Module] = []
    for i in range(linear_layers):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < linear_layers - 1:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """(B, T, K, D) -> (B, T, sum W): one stem's complex mask, band after band, each band an MLP
    whose doubled output is halved by a GLU."""

    def __init__(self, dim: int, widths: list[int], linear_layers: int, expansion: int):
        super().__init__()
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, 2 * w, dim * expansion, linear_layers), nn.GLU(dim=-1)) for w in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(band) for net, band in zip(self.to_freqs, x.unbind(dim=-2), strict=True)], dim=-1)


# --- the mel band layout (Mel-Band RoFormer) ----------------------------------------------


def _hz_to_mel(hz: float) -> float:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    if hz >= 1000.0:
        return 15.0 + math.log(hz / 1000.0) / (math.log(6.4) / 27.0)
    return hz / (200.0 / 3)


def _mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    logstep = math.log(6.4) / 27.0
    return torch.where(mels >= 15.0, 1000.0 * torch.exp(logstep * (mels - 15.0)), (200.0 / 3) * mels)


def mel_band_layout(sample_rate: int, n_fft: int, num_bands: int) -> torch.Tensor:
    """(K, F) bool: bin f lies under mel band k, where the Slaney-normalised triangular filter of
    ``librosa.filters.mel(sr, n_fft, n_mels=K)`` is positive.

    Computed in float64 in the order librosa computes it (then rounded to float32, as its
    filter bank is, before the sign test), so that the layout is bit-for-bit the published one.
    The first bin of the first band and the last bin of the last band are included by decree,
    as in MSST: their filter values are zero or nearly so.
    """
    n_bins = n_fft // 2 + 1
    bin_hz = torch.arange(n_bins, dtype=torch.float64, device="cpu") * (1.0 / (n_fft * (1.0 / sample_rate)))
    low, high = _hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0)
    step = (high - low) / (num_bands + 1)
    mels = torch.arange(num_bands + 2, dtype=torch.float64, device="cpu") * step + low
    mels[-1] = high
    edges = _mel_to_hz(mels)                                            # (K + 2,) Hz
    widths = edges.diff()
    ramps = edges[:, None] - bin_hz[None, :]                            # (K + 2, F)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0).float()
    weights = (weights.double() * (2.0 / (edges[2:] - edges[:-2]))[:, None]).float()
    layout = weights > 0
    layout[0, 0] = layout[-1, -1] = True
    return layout
