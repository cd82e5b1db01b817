"""``htdemucs``: Hybrid Transformer Demucs (Rouard, Massa and Défossez 2022), as the published
``htdemucs``, ``htdemucs_ft`` and ``htdemucs_6s`` models use it.

Two U-Nets run side by side: a spectral one on the complex STFT (real and imaginary parts as
channels, convolutions over frequency) and a temporal one on the waveform. A cross-domain
Transformer joins them at the bottom; the spectral output goes back through the inverse STFT
and the two branches' outputs are added. The STFT is inside the module, so the engine hands it
waveforms: (B, C, L) -> (B, S, C, L).

The parameters are the publisher's constructor arguments under their own names, so that a
published file's arguments fill ``HTDemucsParams`` and its state dict loads key for key
(strict). Only what the published models use is built: complex-as-channels output, no Wiener
step, sinusoidal positions, dense attention, pre-norm layers; other values are refused in one
line by ``check_params``. The model runs on segments no longer than its training segment
(``segment`` seconds at ``samplerate``), zero-padded to exactly that length as in training.

Shape letters: B batch, C audio channels, S stems, L samples, Fr frequency rows, T frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.errors import ConfigError, ModelError
from stemsplit.models.base import SeparationModel
from stemsplit.models.htdemucs_layers import DecoderLayer, EncoderLayer, ScaledEmbedding, pad_reflect
from stemsplit.models.htdemucs_transformer import CrossDomainTransformer
from stemsplit.models.registry import register


@dataclass
class HTDemucsParams:
    """The publisher's constructor arguments that shape the network, with its defaults (the published
    models set some differently: configs/htdemucs.yaml has the published htdemucs's values)."""

    channels: int = 48
    channels_time: int = 0  # 0: the same as channels (the publisher's None)
    growth: float = 2.0
    nfft: int = 4096
    cac: bool = True
    wiener_iters: int = 0
    depth: int = 4
    rewrite: bool = True
    multi_freqs: list[float] = field(default_factory=list)
    freq_emb: float = 0.2
    emb_scale: float = 10.0
    kernel_size: int = 8
    time_stride: int = 2
    stride: int = 4
    context: int = 1
    context_enc: int = 0
    norm_starts: int = 4
    norm_groups: int = 4
    dconv_mode: int = 1
    dconv_depth: int = 2
    dconv_comp: float = 8.0
    bottom_channels: int = 0
    t_layers: int = 5
    t_emb: str = "sin"
    t_hidden_scale: float = 4.0
    t_heads: int = 8
    t_norm_in: bool = True
    t_norm_in_group: bool = False
    t_group_norm: bool = False
    t_norm_first: bool = True
    t_norm_out: bool = True
    t_max_period: float = 10000.0
    t_layer_scale: bool = True
    t_gelu: bool = True
    t_weight_pos_embed: float = 1.0
    t_sin_random_shift: int = 0
    t_sparse_self_attn: bool = False
    t_sparse_cross_attn: bool = False
    t_auto_sparsity: bool = False
    t_cross_first: bool = False
    samplerate: int = 44100
    segment: float = 10.0  # seconds of the training segment (published: 7.8, the publisher's Fraction 39/5)
    use_train_segment: bool = True


# values the published models do not use, which this implementation does not build: field -> (wanted, why)
_ONLY = {
    "cac": (True, "only complex-as-channels output is implemented"),
    "wiener_iters": (0, "the Wiener output of spectral-masking HTDemucs variants is not implemented"),
    "t_emb": ("sin", "only sinusoidal positions are implemented"),
    "t_sin_random_shift": (0, "random position shifts make separation non-deterministic"),
    "t_sparse_self_attn": (False, "sparse attention needs the publisher's unreleased kernels"),
    "t_sparse_cross_attn": (False, "sparse attention needs the publisher's unreleased kernels"),
    "t_auto_sparsity": (False, "sparse attention needs the publisher's unreleased kernels"),
    "t_norm_first": (True, "only pre-norm Transformer layers are implemented"),
    "t_group_norm": (False, "only LayerNorm inside the Transformer layers is implemented"),
}


def training_samples(segment: float, samplerate: int) -> int:
    """Samples of a ``segment``-second training segment; the tolerance makes a float such as 7.8
    give the count its exact fraction (39/5 s) gives, where a plain int() could fall one short."""
    return int(math.floor(segment * samplerate + 1e-6))


@register("htdemucs")
class HTDemucs(SeparationModel):
    """Waveform (B, C, L) -> stems (B, S, C, L), L at most the training segment."""

    params_class = HTDemucsParams
    input_kind, output_kind, target, default_loss = "waveform", "waveforms", "waveform", "l1"

    @classmethod
    def check_params(cls, params: HTDemucsParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        for name, (wanted, why) in _ONLY.items():
            if getattr(params, name) != wanted:
                raise ConfigError(f"model.{name}: {getattr(params, name)!r} is not supported ({why}); "
                                  f"use {wanted!r}")
        if params.multi_freqs:
            raise ConfigError("model.multi_freqs: frequency-band splitting is not implemented; use []")
        if params.t_norm_in_group and not params.t_norm_in:
            raise ConfigError("model.t_norm_in_group: a GroupNorm before the Transformer is not implemented; "
                              "use t_norm_in: true")
        if params.nfft < 16 or params.nfft & (params.nfft - 1):
            raise ConfigError(f"model.nfft: {params.nfft} must be a power of two >= 16")
        if params.depth < 1 or params.t_layers < 0 or params.channels < 1:
            raise ConfigError("model.depth, model.channels and model.t_layers: must be positive")
        if params.dconv_mode not in (0, 1, 2, 3):
            raise ConfigError(f"model.dconv_mode: {params.dconv_mode} must be 0, 1 (encoder), 2 (decoder) or 3")
        if params.segment <= 0 or params.samplerate <= 0:
            raise ConfigError("model.segment and model.samplerate: must be positive")
        width = params.bottom_channels or int(params.channels * params.growth ** (params.depth - 1))
        if params.t_layers and (width % params.t_heads or width % 4):
            raise ConfigError(f"model.t_heads: the Transformer's width {width} must be a multiple of "
                              f"t_heads ({params.t_heads}) and of 4")

    def __init__(self, params: HTDemucsParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        p = params
        self.nfft, self.hop_length = p.nfft, p.nfft // 4
        self.depth, self.bottom_channels = p.depth, p.bottom_channels
        self.training_length = training_samples(p.segment, p.samplerate) if p.use_train_segment else None
        self.encoder, self.decoder = nn.ModuleList(), nn.ModuleList()
        self.tencoder, self.tdecoder = nn.ModuleList(), nn.ModuleList()
        self.freq_emb = None
        self._build_branches(p, n_channels, n_stems)
        width = p.channels * int(p.growth) ** (p.depth - 1) if float(p.growth).is_integer() \
            else int(p.channels * p.growth ** (p.depth - 1))
        if p.bottom_channels:
            self.channel_upsampler = nn.Conv1d(width, p.bottom_channels, 1)
            self.channel_downsampler = nn.Conv1d(p.bottom_channels, width, 1)
            self.channel_upsampler_t = nn.Conv1d(width, p.bottom_channels, 1)
            self.channel_downsampler_t = nn.Conv1d(p.bottom_channels, width, 1)
            width = p.bottom_channels
        self.crosstransformer = None
        if p.t_layers > 0:
            self.crosstransformer = CrossDomainTransformer(
                width, heads=p.t_heads, num_layers=p.t_layers, hidden_scale=p.t_hidden_scale,
                cross_first=p.t_cross_first, norm_in=p.t_norm_in, norm_out=p.t_norm_out,
                layer_scale=p.t_layer_scale, gelu=p.t_gelu, max_period=p.t_max_period,
                weight_pos_embed=p.t_weight_pos_embed)

    def _build_branches(self, p: HTDemucsParams, n_channels: int, n_stems: int) -> None:
        """The spectral and temporal encoder/decoder stacks, layer by layer as the publisher builds them."""
        chin, chin_z = n_channels, 2 * n_channels        # complex as channels: real and imaginary parts
        chout, chout_z = p.channels_time or p.channels, p.channels
        freqs = p.nfft // 2
        common = {"norm_groups": p.norm_groups, "rewrite": p.rewrite, "dconv_compress": p.dconv_comp,
                  "dconv_depth": p.dconv_depth}
        for index in range(p.depth):
            freq = freqs > 1
            kernel, stride, pad, last_freq = p.kernel_size, p.stride, True, False
            if not freq:
                kernel, stride = 2 * p.time_stride, p.time_stride
            if freq and freqs <= p.kernel_size:  # the last frequency layer folds what is left into one row
                kernel, pad, last_freq = freqs, False, True
            kw = {**common, "kernel_size": kernel, "stride": stride, "freq": freq, "pad": pad,
                  "norm": index >= p.norm_starts}
            kwt = {**kw, "freq": False, "kernel_size": p.kernel_size, "stride": p.stride, "pad": True}
            enc_dconv, dec_dconv = bool(p.dconv_mode & 1), bool(p.dconv_mode & 2)
            if last_freq:
                chout_z = chout = max(chout, chout_z)
            self.encoder.append(EncoderLayer(chin_z, chout_z, context=p.context_enc, dconv=enc_dconv, **kw))
            if freq:
                self.tencoder.append(EncoderLayer(chin, chout, context=p.context_enc, dconv=enc_dconv,
                                                  empty=last_freq, **kwt))
            if index == 0:
                chin = n_channels * n_stems
                chin_z = 2 * chin
            self.decoder.insert(0, DecoderLayer(chout_z, chin_z, context=p.context, dconv=dec_dconv,
                                                last=index == 0, **kw))
            if freq:
                self.tdecoder.insert(0, DecoderLayer(chout, chin, context=p.context, dconv=dec_dconv,
                                                     last=index == 0, empty=last_freq, **kwt))
            chin, chin_z = chout, chout_z
            chout, chout_z = int(p.growth * chout), int(p.growth * chout_z)
            if freq:
                freqs = 1 if freqs <= p.kernel_size else freqs // p.stride
            if index == 0 and p.freq_emb:
                self.freq_emb = ScaledEmbedding(freqs, chin_z, p.emb_scale)
                self.freq_emb_scale = p.freq_emb

    # --- STFT (inside the module, as the publisher trains it) ----------------------------

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        return torch.hann_window(self.nfft, device=x.device, dtype=x.real.dtype)

    def _spec(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, nfft / 2, ceil(L / hop)) complex: frames aligned so that the
        spectrogram has exactly L / hop frames (reflect padding of 3 hop / 2 on each side)."""
        hop = self.hop_length
        frames = -(-x.shape[-1] // hop)
        pad = hop // 2 * 3
        x = pad_reflect(x, pad, pad + frames * hop - x.shape[-1])
        *lead, length = x.shape
        z = torch.stft(x.reshape(-1, length), self.nfft, hop, window=self._window(x), win_length=self.nfft,
                       normalized=True, center=True, return_complex=True, pad_mode="reflect")
        z = z.view(*lead, *z.shape[-2:])
        return z[..., :-1, 2:2 + frames]

    def _ispec(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """(..., nfft / 2, T) complex -> (..., length) samples, the inverse of ``_spec``."""
        hop = self.hop_length
        z = F.pad(F.pad(z, (0, 0, 0, 1)), (2, 2))
        pad = hop // 2 * 3
        padded = hop * -(-length // hop) + 2 * pad
        *lead, bins, frames = z.shape
        x = torch.istft(z.reshape(-1, bins, frames), self.nfft, hop, window=self._window(z), win_length=self.nfft,
                        normalized=True, length=padded, center=True)
        return x.view(*lead, padded)[..., pad:pad + length]

    # --- network --------------------------------------------------------------------------

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(B, C, L) mixture -> (B, S, C, L) stems."""
        length = mix.shape[-1]
        work = length
        if self.training_length is not None:
            if length > self.training_length:
                raise ModelError(f"HTDemucs takes at most its training segment ({self.training_length} samples, "
                                 f"{self.params.segment:g} s), got {length}; use --segment "
                                 f"{self.params.segment:g} or less")
            work = self.training_length
            mix = F.pad(mix, (0, work - length))
        z = self._spec(mix)
        b, c, fq, t = z.shape
        x = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, fq, t)  # (B, 2C, Fr, T)
        mean, std = x.mean(dim=(1, 2, 3), keepdim=True), x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)
        meant, stdt = mix.mean(dim=(1, 2), keepdim=True), mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - meant) / (1e-5 + stdt)
        x, xt = self._unets(x, xt)
        s = self.n_stems
        x = x.view(b, s, -1, fq, t) * std[:, None] + mean[:, None]
        zout = torch.view_as_complex(x.view(b, s, -1, 2, fq, t).permute(0, 1, 2, 4, 5, 3).contiguous())
        x = self._ispec(zout, work)
        xt = xt.view(b, s, -1, work) * stdt[:, None] + meant[:, None]
        return (xt + x)[..., :length]

    def _unets(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (B, 2C, Fr, T) spectrum and (B, C, L) waveform -> the two branches' outputs."""
        saved, saved_t, lengths, lengths_t = [], [], [], []
        for idx, encode in enumerate(self.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(self.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = self.tencoder[idx]
                xt = tenc(xt)
                if tenc.empty:
                    inject = xt  # the time branch merges into the frequency branch here
                else:
                    saved_t.append(xt)
            x = encode(x, inject)
            if idx == 0 and self.freq_emb is not None:
                rows = torch.arange(x.shape[-2], device=x.device)
                x = x + self.freq_emb_scale * self.freq_emb(rows).t()[None, :, :, None].expand_as(x)
            saved.append(x)
        if self.crosstransformer is not None:
            x, xt = self._bottom(x, xt)
        offset = self.depth - len(self.tdecoder)
        for idx, decode in enumerate(self.decoder):
            x, pre = decode(x, saved.pop(-1), lengths.pop(-1))
            if idx >= offset:
                tdec = self.tdecoder[idx - offset]
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, lengths_t.pop(-1))
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), lengths_t.pop(-1))
        return x, xt

    def _bottom(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-domain Transformer, between 1x1 convs to and from ``bottom_channels`` where set."""
        if not self.bottom_channels:
            return self.crosstransformer(x, xt)
        b, c, f, t = x.shape
        x = self.channel_upsampler(x.reshape(b, c, f * t)).view(b, -1, f, t)
        x, xt = self.crosstransformer(x, self.channel_upsampler_t(xt))
        x = self.channel_downsampler(x.reshape(b, x.shape[1], f * t)).view(b, -1, f, t)
        return x, self.channel_downsampler_t(xt)

    def export_module(self) -> nn.Module:
        raise ModelError("HTDemucs has no ONNX export: its STFT and inverse STFT are complex-valued torch "
                         "operations; run it on torch (--runtime torch)")
