"""Spleeter style U-Net: a 2D conv encoder/decoder with skip connections, all stems at once.

Shape letters: B batch, C channels, F frequency bins, T frames, S stems.
The network sees bins [0, max_bin); bins above get the mean mask of the top 32 bins, a
smooth extension that keeps the full bandwidth in the output.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register


@dataclass
class UNetParams:
    """Spleeter style 2D U-Net over spectrogram patches."""

    base_channels: int = 8
    depth: int = 6
    max_bin: int = 1024  # the U-Net sees bins [0, max_bin); must be divisible by 2**depth
    dropout: float = 0.3
    # add the bin's frequency as an input channel: the convolutions are shift-equivariant along
    # frequency and the per-bin standardisation removes the level cue, so without it the network
    # cannot tell a bass register from any other (one cause of the shipped unet's silent bass;
    # the README's "Better stems" has the measured runs)
    freq_coords: bool = False


class SubpixelConvTranspose(nn.Module):
    """A stride-2 ``ConvTranspose2d`` (odd kernel K, padding (K-1)/2, output_padding 1) as one
    ordinary convolution to 4x the channels followed by a pixel shuffle: the same numbers up to
    float rounding. Output row 2m + a only ever reads input rows m - r .. m + r, through the
    kernel taps of parity a, so each of the four (row, column) parities is a small dense
    convolution. ONNX Runtime's CPU ConvTranspose goes through a (C_out * K * K, H * W)
    column buffer (92 MB for the last decoder layer on a 10-s segment) and is 3-4x slower than
    this; the export uses it (``UNet.export_module``). The weights stay the transposed conv's own
    tensors: the tap rearrangement is graph arithmetic on them that ONNX Runtime folds at load.
    """

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        k, = set(layer.kernel_size)
        if (layer.stride, layer.output_padding, layer.dilation, layer.groups) != ((2, 2), (1, 1), (1, 1), 1) \
                or k % 2 == 0 or layer.padding != ((k - 1) // 2,) * 2:
            raise ValueError("SubpixelConvTranspose: needs stride 2, an odd kernel, padding (K-1)/2, output_padding 1")
        self.weight, self.bias = layer.weight, layer.bias   # (C_in, C_out, K, K), (C_out,)
        p = (k - 1) // 2
        self.radius = r = (p + 1) // 2
        # output 2m + a reads input m + e through tap a + p - 2e; index k is an appended zero tap
        taps = [[a + p - 2 * e if 0 <= a + p - 2 * e < k else k for e in range(-r, r + 1)] for a in (0, 1)]
        self.register_buffer("taps", torch.tensor(taps).reshape(-1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        c_in, c_out = self.weight.shape[:2]
        n = 2 * self.radius + 1
        w = F.pad(self.weight, (0, 1, 0, 1))                                     # (C_in, C_out, K+1, K+1)
        w = w.index_select(2, self.taps).index_select(3, self.taps)              # (C_in, C_out, 2n, 2n)
        w = w.reshape(c_in, c_out, 2, n, 2, n).permute(1, 2, 4, 0, 3, 5).reshape(4 * c_out, c_in, n, n)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.pixel_shuffle(F.conv2d(x, w, bias, padding=self.radius), 2)


@register("unet")
class UNet(SeparationModel):
    """Magnitude (B, C, F, T) -> masks (B, S, C, F, T); trained on magnitudes with L1."""

    params_class = UNetParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "l1"

    @classmethod
    def check_params(cls, params: UNetParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.base_channels < 1 or params.depth < 1:
            raise ConfigError("model.base_channels and model.depth: must be >= 1")
        if not 0 < params.max_bin <= n_bins:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be in [1, {n_bins}] (the STFT's bins)")
        if params.max_bin % (2 ** params.depth) or params.max_bin < 32:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be a multiple of 2**depth = "
                              f"{2 ** params.depth} and at least 32")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")

    def context_frames(self) -> None:
        # Six 5x5 stride-2 layers see about 250 frames (6 s): wider than any practical segment
        # margin, so the configured overlap decides, as for a recurrent model.
        return None

    def __init__(self, params: UNetParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.max_bin = min(params.max_bin, n_bins)
        self.depth = params.depth
        self.norm = BinNorm(self.max_bin)
        widths = [params.base_channels * 2 ** i for i in range(params.depth)]

        # --- encoder: 5x5 stride-2 convolutions
        self.down = nn.ModuleList()
        in_ch = n_channels + (1 if params.freq_coords else 0)
        self.freq_coords = params.freq_coords
        for w in widths:
            self.down.append(nn.Sequential(
                nn.Conv2d(in_ch, w, kernel_size=5, stride=2, padding=2),
                nn.BatchNorm2d(w),
                nn.LeakyReLU(0.2),
            ))
            in_ch = w
        # --- decoder: transposed convolutions, skip connections concatenated
        self.up = nn.ModuleList()
        for i in reversed(range(params.depth)):
            out_ch = widths[i - 1] if i > 0 else params.base_channels
            in_ch = widths[i] if i == params.depth - 1 else widths[i] * 2
            block = [nn.ConvTranspose2d(in_ch, out_ch, kernel_size=5, stride=2, padding=2,
                                        output_padding=1),
                     nn.BatchNorm2d(out_ch),
                     nn.ReLU()]
            if i >= params.depth - 3:  # dropout on the three deepest decoder layers, as Spleeter
                block.append(nn.Dropout(params.dropout))
            self.up.append(nn.Sequential(*block))
        self.head = nn.Conv2d(params.base_channels, n_stems * n_channels, kernel_size=1)

    def export_module(self) -> nn.Module:
        """A copy whose three finest decoder layers are ``SubpixelConvTranspose``: same masks, and
        on ONNX Runtime a 10-s segment's peak working memory drops by ~150 MB. The coarser layers
        stay transposed convolutions: there ONNX Runtime's are cheap, and their larger weights,
        rearranged at load, would only add load-time memory (+35 MB measured when all six are)."""
        module = copy.deepcopy(self).eval()
        for block in module.up[-3:]:
            block[0] = SubpixelConvTranspose(block[0])
        return module

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        b, c, f, t = mag.shape
        step = 2 ** self.depth
        t_pad = (-t) % step
        x = self.norm(mag[:, :, : self.max_bin])
        if self.freq_coords:  # (B, 1, Fb, T): -1 at 0 Hz to +1 at the top bin the network sees
            coord = torch.linspace(-1.0, 1.0, self.max_bin, device=x.device, dtype=x.dtype)
            x = torch.cat([x, coord.view(1, 1, -1, 1).expand(b, 1, -1, t)], dim=1)
        x = F.pad(x, (0, t_pad))
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the deepest output is the decoder's input, not a skip
        for layer in self.up:
            x = layer(x)
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        masks = torch.sigmoid(self.head(x))[..., :t]                 # (B, S*C, Fb, T)
        masks = masks.reshape(b, self.n_stems, c, self.max_bin, t)
        if f > self.max_bin:
            top = masks[:, :, :, -32:].mean(dim=3, keepdim=True)
            masks = torch.cat([masks, top.expand(-1, -1, -1, f - self.max_bin, -1)], dim=3)
        return masks
