"""The cross-domain Transformer of Hybrid Transformer Demucs, between the encoders and the decoders.

Two stacks of layers run side by side, one on the spectral branch's tokens (every frequency
row of every frame) and one on the temporal branch's frames. Layers alternate: self-attention
within each branch, then cross-attention where each branch attends to the other's previous
output. Positions are sinusoidal (2-d for the spectral tokens, 1-d for the frames).

Attribute names follow the publisher's modules, so that a published state dict loads key for key
(strict); the attention itself is ``torch.nn.MultiheadAttention``, called the way the
publisher's layers call it. Registers no family.

Shape letters: B batch, C channels (the model width), Fr frequency rows, T1 spectral frames,
T2 temporal frames, N tokens.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.models.htdemucs_layers import LayerScale


def sin_embedding(length: int, dim: int, max_period: float, device=None) -> torch.Tensor:
    """(length, 1, dim) 1-d sinusoidal positions: cosines then sines over dim / 2 periods."""
    half = dim // 2
    pos = torch.arange(length, device=device).view(-1, 1, 1)
    periods = max_period ** (torch.arange(half, device=device).view(1, 1, -1) / (half - 1))
    phase = pos / periods
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def sin_embedding_2d(dim: int, height: int, width: int, max_period: float, device=None) -> torch.Tensor:
    """(1, dim, height, width) 2-d sinusoidal positions: the first half of the channels encodes
    the column (time), the second half the row (frequency), sine and cosine interleaved."""
    pe = torch.zeros(dim, height, width)
    half = dim // 2
    inv_freq = torch.exp(torch.arange(0.0, half, 2) * -(math.log(max_period) / half))
    cols = torch.arange(0.0, width).unsqueeze(1) * inv_freq          # (width, half / 2)
    rows = torch.arange(0.0, height).unsqueeze(1) * inv_freq         # (height, half / 2)
    pe[0:half:2] = torch.sin(cols).t().unsqueeze(1).repeat(1, height, 1)
    pe[1:half:2] = torch.cos(cols).t().unsqueeze(1).repeat(1, height, 1)
    pe[half::2] = torch.sin(rows).t().unsqueeze(2).repeat(1, 1, width)
    pe[half + 1::2] = torch.cos(rows).t().unsqueeze(2).repeat(1, 1, width)
    return pe[None].to(device)


class TokenGroupNorm(nn.GroupNorm):
    """GroupNorm over (B, N, C) tokens: one group normalises all of a sequence's tokens together."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _Block(nn.Module):
    """What self- and cross-attention layers share: the feed-forward part, the pre-norms' final
    GroupNorm and the layer scales (pre-norm residual layers, (B, N, C) tokens)."""

    def __init__(self, dim: int, hidden: int, gelu: bool, norm_out: bool, layer_scale: bool):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(0.0)
        self.linear2 = nn.Linear(hidden, dim)
        self.dropout1, self.dropout2 = nn.Dropout(0.0), nn.Dropout(0.0)
        self.activation = F.gelu if gelu else F.relu
        self.norm_out = TokenGroupNorm(1, dim) if norm_out else None
        self.gamma_1 = LayerScale(dim, channel_last=True) if layer_scale else nn.Identity()
        self.gamma_2 = LayerScale(dim, channel_last=True) if layer_scale else nn.Identity()

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _finish(self, x: torch.Tensor, ff_norm: nn.Module) -> torch.Tensor:
        x = x + self.gamma_2(self._feed_forward(ff_norm(x)))
        return self.norm_out(x) if self.norm_out is not None else x


class SelfAttentionLayer(_Block):
    """(B, N, C) -> (B, N, C): pre-norm self-attention and feed-forward, each layer-scaled."""

    def __init__(self, dim: int, heads: int, hidden: int, *, gelu: bool, norm_out: bool, layer_scale: bool):
        super().__init__(dim, hidden, gelu, norm_out, layer_scale)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        # query, key and value are one tensor: torch takes its fused inference path, as the publisher's layer does
        attended = self.self_attn(h, h, h, need_weights=False)[0]
        x = x + self.gamma_1(self.dropout1(attended))
        return self._finish(x, self.norm2)


class CrossAttentionLayer(_Block):
    """(B, N, C) queries attending to (B, M, C) keys/values of the other branch -> (B, N, C)."""

    def __init__(self, dim: int, heads: int, hidden: int, *, gelu: bool, norm_out: bool, layer_scale: bool):
        super().__init__(dim, hidden, gelu, norm_out, layer_scale)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        kv = self.norm2(k)
        attended = self.cross_attn(self.norm1(q), kv, kv, need_weights=False)[0]
        x = q + self.gamma_1(self.dropout1(attended))
        return self._finish(x, self.norm3)


class CrossDomainTransformer(nn.Module):
    """(B, C, Fr, T1) spectral and (B, C, T2) temporal features -> the same shapes, after
    ``num_layers`` alternating self-attention and cross-attention layers in each branch."""

    def __init__(self, dim: int, *, heads: int, num_layers: int, hidden_scale: float, cross_first: bool,
                 norm_in: bool, norm_out: bool, layer_scale: bool, gelu: bool, max_period: float,
                 weight_pos_embed: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer width {dim} is not a multiple of {heads} heads")
        self.max_period, self.weight_pos_embed = max_period, weight_pos_embed
        self.self_parity = 1 if cross_first else 0  # layer idx is self-attention where idx % 2 == this
        self.norm_in = nn.LayerNorm(dim) if norm_in else nn.Identity()
        self.norm_in_t = nn.LayerNorm(dim) if norm_in else nn.Identity()
        kw = {"gelu": gelu, "norm_out": norm_out, "layer_scale": layer_scale}
        hidden = int(dim * hidden_scale)
        self.layers, self.layers_t = nn.ModuleList(), nn.ModuleList()
        for idx in range(num_layers):
            kind = SelfAttentionLayer if idx % 2 == self.self_parity else CrossAttentionLayer
            self.layers.append(kind(dim, heads, hidden, **kw))
            self.layers_t.append(kind(dim, heads, hidden, **kw))

    def forward(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, fr, t1 = x.shape
        pos2d = sin_embedding_2d(c, fr, t1, self.max_period, x.device)
        x = x.permute(0, 3, 2, 1).reshape(b, t1 * fr, c)                 # (B, T1 * Fr, C), frame-major
        x = self.norm_in(x) + self.weight_pos_embed * pos2d.permute(0, 3, 2, 1).reshape(1, t1 * fr, c)
        t2 = xt.shape[-1]
        xt = self.norm_in_t(xt.transpose(1, 2))                           # (B, T2, C)
        xt = xt + self.weight_pos_embed * sin_embedding(t2, c, self.max_period, x.device).transpose(0, 1)
        for idx, (layer, layer_t) in enumerate(zip(self.layers, self.layers_t)):
            if idx % 2 == self.self_parity:
                x, xt = layer(x), layer_t(xt)
            else:
                x, xt = layer(x, xt), layer_t(xt, x)
        x = x.reshape(b, t1, fr, c).permute(0, 3, 2, 1)
        return x, xt.transpose(1, 2)
