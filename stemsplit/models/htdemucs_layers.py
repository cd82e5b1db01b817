"""The convolutional layers of Hybrid Transformer Demucs: encoder and decoder blocks with their
compressed residual branch (``DConv``), shared by the spectral and the temporal U-Net.

Attribute names follow the publisher's modules, so that a published state dict loads into these
layers key for key (strict). Registers no family.

Shape letters: B batch, C channels, Fr frequency rows, T frames or samples, L samples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_reflect(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect-pad the last axis by (left, right), also when the signal is shorter than the padding:
    zeros are added first at the right (then left) until a reflection fits, as the publisher does."""
    length = x.shape[-1]
    widest = max(left, right)
    if length <= widest:
        extra = widest - length + 1
        extra_right = min(right, extra)
        extra_left = extra - extra_right
        x = F.pad(x, (extra_left, extra_right))
        left, right = left - extra_left, right - extra_right
    return F.pad(x, (left, right), mode="reflect")


class LayerScale(nn.Module):
    """A learned per-channel scale of a residual branch: (B, C, T) (or (B, T, C) when channel_last)."""

    def __init__(self, channels: int, channel_last: bool = False):
        super().__init__()
        self.channel_last = channel_last
        self.scale = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x if self.channel_last else self.scale[:, None] * x


class DConv(nn.Module):
    """Residual branches of dilated 1-d convolutions on a channel bottleneck: (B, C, T) -> (B, C, T).

    Branch d: conv (kernel 3, dilation 2**d) to C / compress channels, GroupNorm, GELU, 1x1 conv
    to 2C, GroupNorm, GLU, LayerScale; each branch's output is added to its input.
    """

    def __init__(self, channels: int, compress: float, depth: int):
        super().__init__()
        hidden = int(channels / compress)
        dilate = depth > 0
        self.layers = nn.ModuleList()
        for d in range(abs(depth)):
            dilation = 2 ** d if dilate else 1
            self.layers.append(nn.Sequential(
                nn.Conv1d(channels, hidden, 3, dilation=dilation, padding=dilation),
                nn.GroupNorm(1, hidden), nn.GELU(),
                nn.Conv1d(hidden, 2 * channels, 1),
                nn.GroupNorm(1, 2 * channels), nn.GLU(1),
                LayerScale(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


def _norm(enabled: bool, groups: int, channels: int) -> nn.Module:
    return nn.GroupNorm(groups, channels) if enabled else nn.Identity()


def _per_row(dconv: DConv, y: torch.Tensor, freq: bool) -> torch.Tensor:
    """The residual branch over time, for every frequency row of a (B, C, Fr, T) input."""
    if not freq:
        return dconv(y)
    b, c, fr, t = y.shape
    y = dconv(y.permute(0, 2, 1, 3).reshape(-1, c, t))
    return y.view(b, fr, c, t).permute(0, 2, 1, 3)


class EncoderLayer(nn.Module):
    """One encoder block: strided conv, norm, GELU, residual branch, 1x1 "rewrite" conv with GLU.

    ``freq``: a 2-d conv over frequency only, (B, C, Fr, T) -> (B, C', Fr / stride, T); else a
    1-d conv over time, (B, C, T) -> (B, C', T / stride) (the input padded to a multiple of the
    stride). ``empty``: only the first conv (the time branch's last layer, merged into the
    frequency branch by ``inject``).
    """

    def __init__(self, chin: int, chout: int, *, kernel_size: int, stride: int, freq: bool, pad: bool,
                 norm: bool, norm_groups: int, rewrite: bool, context: int, dconv: bool,
                 dconv_compress: float, dconv_depth: int, empty: bool = False):
        super().__init__()
        self.freq, self.stride, self.empty = freq, stride, empty
        padding = kernel_size // 4 if pad else 0
        if freq:
            self.conv = nn.Conv2d(chin, chout, (kernel_size, 1), (stride, 1), (padding, 0))
        else:
            self.conv = nn.Conv1d(chin, chout, kernel_size, stride, padding)
        if empty:
            return
        conv = nn.Conv2d if freq else nn.Conv1d
        self.norm1 = _norm(norm, norm_groups, chout)
        self.rewrite = None
        if rewrite:
            self.rewrite = conv(chout, 2 * chout, 1 + 2 * context, 1, context)
            self.norm2 = _norm(norm, norm_groups, 2 * chout)
        self.dconv = DConv(chout, dconv_compress, dconv_depth) if dconv else None

    def forward(self, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        if not self.freq:
            if x.dim() == 4:
                x = x.reshape(x.shape[0], -1, x.shape[-1])
            rest = x.shape[-1] % self.stride
            if rest:
                x = F.pad(x, (0, self.stride - rest))
        y = self.conv(x)
        if self.empty:
            return y
        if inject is not None:
            y = y + (inject[:, :, None] if inject.dim() == 3 and y.dim() == 4 else inject)
        y = F.gelu(self.norm1(y))
        if self.dconv is not None:
            y = _per_row(self.dconv, y, self.freq)
        if self.rewrite is not None:
            y = F.glu(self.norm2(self.rewrite(y)), dim=1)
        return y


class DecoderLayer(nn.Module):
    """One decoder block: skip added, "rewrite" conv with GLU, residual branch, transposed conv.

    Returns (output, pre): ``pre`` is the input of the transposed conv, which the time branch
    takes over where the two branches split. ``last``: no GELU on the output (the network's end).
    """

    def __init__(self, chin: int, chout: int, *, kernel_size: int, stride: int, freq: bool, pad: bool,
                 norm: bool, norm_groups: int, rewrite: bool, context: int, dconv: bool,
                 dconv_compress: float, dconv_depth: int, last: bool = False, empty: bool = False):
        super().__init__()
        self.freq, self.last, self.empty, self.chin = freq, last, empty, chin
        self.pad = kernel_size // 4 if pad else 0
        if freq:
            self.conv_tr = nn.ConvTranspose2d(chin, chout, (kernel_size, 1), (stride, 1))
        else:
            self.conv_tr = nn.ConvTranspose1d(chin, chout, kernel_size, stride)
        self.norm2 = _norm(norm, norm_groups, chout)
        if empty:
            return
        conv = nn.Conv2d if freq else nn.Conv1d
        self.rewrite = None
        if rewrite:
            self.rewrite = conv(chin, 2 * chin, 1 + 2 * context, 1, context)
            self.norm1 = _norm(norm, norm_groups, 2 * chin)
        self.dconv = DConv(chin, dconv_compress, dconv_depth) if dconv else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.freq and x.dim() == 3:
            x = x.view(x.shape[0], self.chin, -1, x.shape[-1])
        y = x
        if not self.empty:
            y = x + skip
            if self.rewrite is not None:
                y = F.glu(self.norm1(self.rewrite(y)), dim=1)
            if self.dconv is not None:
                y = _per_row(self.dconv, y, self.freq)
        z = self.norm2(self.conv_tr(y))
        if self.freq:
            if self.pad:
                z = z[..., self.pad:-self.pad, :]
        else:
            z = z[..., self.pad:self.pad + length]
        if not self.last:
            z = F.gelu(z)
        return z, y


class ScaledEmbedding(nn.Module):
    """A frequency-row embedding whose output is scaled (the publisher's learning-rate trick)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, scale: float):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        self.scale = scale

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.embedding(rows) * self.scale
