"""BS-RoFormer and Mel-Band RoFormer: waveform in, stems out, with the STFT inside the network.

Shape letters: B batch, C channels, L samples, F frequency bins, T frames, K bands,
S stems, D feature size, W a band's input width.

Both families (after Lu et al., "Music Source Separation with Band-Split RoPE Transformer",
2023, and Wang et al., "Mel-Band RoFormer for Music Source Separation", 2023) run the same
steps; only the band layout differs:

1. STFT of each channel (Hann window, centred); each bin's real and imaginary parts of every
   channel sit side by side, frequency-major: feature index (f, c, real/imag).
2. Band split: the bins are grouped into K bands, each band's features RMS-normalised and
   projected to D features: (B, T, K, D). BS-RoFormer's bands are contiguous runs of bins
   (``freqs_per_bands``); Mel-Band RoFormer's are the bins under each of ``num_bands``
   triangular mel filters (Slaney scale, as ``librosa.filters.mel`` draws them), so
   neighbouring bands share bins.
3. ``depth`` blocks, each a transformer along time (every band's frame sequence) and then one
   along the bands (every frame's band sequence); rotary positions on both axes.
4. One mask estimator per stem: a per-band MLP gives each bin a complex mask (a bin under
   several mel bands takes the mean of their masks); the mask times the mixture STFT, the DC
   bin zeroed (``zero_dc``), through the inverse STFT to L samples.

The parameter names and the published checkpoints' arithmetic are those of the MSST training
framework (github.com/ZFTurbo/Music-Source-Separation-Training, models/bs_roformer/), which
trained the public community checkpoints: the format adapter (``stemsplit/formats/roformer.py``)
loads their state dicts as they are. Two quirks of that code are kept because the weights
depend on them: BS-RoFormer normalises once after the last block, Mel-Band RoFormer at the end of
every transformer; and a Mel-Band mask MLP has ``mask_estimator_depth + 1`` linear layers, a
BS-RoFormer one ``mask_estimator_depth``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from stemsplit.errors import ConfigError, ModelError
from stemsplit.models.base import SeparationModel
from stemsplit.models.registry import register
from stemsplit.models.roformer_layers import (
    BandSplit,
    MaskEstimator,
    RMSNorm,
    Rotary,
    Transformer,
    mel_band_layout,
)

# BS-RoFormer's bands at n_fft 2048 (1025 bins): 24 x 2, 12 x 4, 8 x 12, 8 x 24, 8 x 48, 128, 129
DEFAULT_FREQS_PER_BANDS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]


@dataclass
class RoformerParams:
    """The MSST YAML ``model:`` fields both families share, with the defaults of MSST's
    constructors (a YAML that leaves a field out gets what MSST would build). ``dim`` and
    ``depth``, which MSST requires, default to a small network."""

    dim: int = 128
    depth: int = 4
    stereo: bool = False
    num_stems: int = 1
    time_transformer_depth: int = 2
    freq_transformer_depth: int = 2
    dim_head: int = 64
    heads: int = 8
    attn_dropout: float = 0.0
    ff_dropout: float = 0.0
    stft_n_fft: int = 2048
    stft_hop_length: int = 512
    stft_win_length: int = 2048
    stft_normalized: bool = False
    zero_dc: bool = True  # MSST's default since 2025-09: the DC bin of every estimate is zeroed
    mask_estimator_depth: int = 2
    mlp_expansion_factor: int = 4
    skip_connection: bool = False  # each block's input also gets every earlier block's output


@dataclass
class BSRoformerParams(RoformerParams):
    freqs_per_bands: list[int] = field(default_factory=lambda: list(DEFAULT_FREQS_PER_BANDS))


@dataclass
class MelBandRoformerParams(RoformerParams):
    attn_dropout: float = 0.1
    ff_dropout: float = 0.1
    mask_estimator_depth: int = 1
    num_bands: int = 60
    sample_rate: int = 44100  # of the mel scale the bands are drawn on


# --- the network -------------------------------------------------------------------------


class _Roformer(SeparationModel):
    """What both families share: STFT, axial transformer blocks, masks, inverse STFT."""

    params_class: ClassVar[type] = RoformerParams
    input_kind, output_kind, target, default_loss = "waveform", "waveforms", "waveform", "l1"
    norm_each_transformer: ClassVar[bool] = False  # else one RMSNorm after the last block
    extra_mask_layers: ClassVar[int] = 0  # linear layers in a mask MLP beyond mask_estimator_depth

    @classmethod
    def check_params(cls, params: RoformerParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        p = params
        for name in ("dim", "depth", "heads", "dim_head", "mask_estimator_depth", "mlp_expansion_factor",
                     "stft_hop_length", "stft_win_length"):
            if getattr(p, name) < 1:
                raise ConfigError(f"model.{name}: must be >= 1, got {getattr(p, name)}")
        for name in ("time_transformer_depth", "freq_transformer_depth"):
            if getattr(p, name) < 0:
                raise ConfigError(f"model.{name}: must be >= 0, got {getattr(p, name)}")
        for name in ("attn_dropout", "ff_dropout"):
            if not 0.0 <= getattr(p, name) < 1.0:
                raise ConfigError(f"model.{name}: must be in [0, 1), got {getattr(p, name)}")
        if p.stft_n_fft < 4 or p.stft_win_length > p.stft_n_fft:
            raise ConfigError(f"model.stft_win_length: {p.stft_win_length} must be <= stft_n_fft ({p.stft_n_fft}), "
                              "and stft_n_fft >= 4")
        if n_bins != p.stft_n_fft // 2 + 1:
            raise ConfigError(f"model.stft_n_fft: {p.stft_n_fft} does not match stft.n_fft ({2 * (n_bins - 1)}); "
                              "set stft.n_fft to the model's stft_n_fft")
        if n_channels != (2 if p.stereo else 1):
            raise ConfigError(f"model.stereo: {str(p.stereo).lower()} does not fit audio.channels {n_channels}; "
                              "stereo models take 2 channels, mono models 1")
        if n_stems != p.num_stems:
            raise ConfigError(f"model.num_stems: {p.num_stems} does not match the {n_stems} stems listed in 'stems'")
        cls._check_bands(p)

    @classmethod
    def _check_bands(cls, params: RoformerParams) -> None:
        raise NotImplementedError

    def band_layout(self) -> list[int]:
        """Bins per band, band after band (K,)."""
        raise NotImplementedError

    def __init__(self, params: RoformerParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        p = params
        self.channels = 2 if p.stereo else 1
        time_rotary, band_rotary = Rotary(p.dim_head), Rotary(p.dim_head)
        common = dict(dim=p.dim, heads=p.heads, dim_head=p.dim_head, attn_dropout=p.attn_dropout,
                      ff_dropout=p.ff_dropout, norm_output=self.norm_each_transformer)
        self.layers = nn.ModuleList(
            nn.ModuleList([Transformer(depth=p.time_transformer_depth, rotary_embed=time_rotary, **common),
                           Transformer(depth=p.freq_transformer_depth, rotary_embed=band_rotary, **common)])
            for _ in range(p.depth))
        self.final_norm = nn.Identity() if self.norm_each_transformer else RMSNorm(p.dim)
        widths = [2 * self.channels * n for n in self.band_layout()]
        self.band_split = BandSplit(p.dim, widths)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(p.dim, widths, p.mask_estimator_depth + self.extra_mask_layers, p.mlp_expansion_factor)
            for _ in range(n_stems))
        # on the CPU even when the weights are built on the meta device (the format adapter does, to
        # take the file's tensors as the weights without a second copy): no weight file holds it
        self.register_buffer("window", torch.hann_window(p.stft_win_length, device="cpu"), persistent=False)

    def context_frames(self) -> None:
        return None  # attention over every frame of the segment: unbounded

    # --- band inputs and masks (the two families differ here) --------------------------------

    def band_inputs(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, T, F, C, 2) STFT -> (B, T, sum W) the bands' inputs, band after band."""
        raise NotImplementedError

    def bin_masks(self, masks: torch.Tensor, n_bins: int) -> torch.Tensor:
        """(B, S, T, sum W) band masks -> (B, S, T, F, C) complex mask of every bin."""
        raise NotImplementedError

    # --- forward -----------------------------------------------------------------------------

    def _stft(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, T, F, C, 2)."""
        p = self.params
        b, c, length = wav.shape
        spec = torch.stft(wav.reshape(b * c, length), p.stft_n_fft, p.stft_hop_length, p.stft_win_length,
                          window=self.window, normalized=p.stft_normalized, center=True, return_complex=True)
        spec = torch.view_as_real(spec)                                   # (B C, F, T, 2)
        return spec.reshape(b, c, *spec.shape[1:]).permute(0, 3, 2, 1, 4)

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, K, D) through the time and band transformers -> (B, T, K, D)."""
        b, t, k, d = x.shape
        earlier: list[torch.Tensor] = []
        for time_transformer, band_transformer in self.layers:
            if self.params.skip_connection:
                for out in earlier:
                    x = x + out
            x = time_transformer(x.transpose(1, 2).reshape(b * k, t, d))  # every band's frames
            x = band_transformer(x.reshape(b, k, t, d).transpose(1, 2).reshape(b * t, k, d))  # every frame's bands
            x = x.reshape(b, t, k, d)
            if self.params.skip_connection:
                earlier.append(x)
        return self.final_norm(x)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, C, L) mixture -> (B, S, C, L) stems."""
        p = self.params
        b, c, length = wav.shape
        spec = self._stft(wav)                                            # (B, T, F, C, 2)
        t, f = spec.shape[1], spec.shape[2]
        features = self._blocks(self.band_split(self.band_inputs(spec)))  # (B, T, K, D)
        masks = torch.stack([estimator(features) for estimator in self.mask_estimators], dim=1)
        stems = torch.view_as_complex(spec.contiguous()).unsqueeze(1) * self.bin_masks(masks, f)  # (B, S, T, F, C)
        if p.zero_dc:
            stems[:, :, :, 0] = 0
        stems = stems.permute(0, 1, 4, 3, 2).reshape(-1, f, t)             # (B S C, F, T)
        out = torch.istft(stems, p.stft_n_fft, p.stft_hop_length, p.stft_win_length, window=self.window,
                          normalized=p.stft_normalized, center=True, length=length)
        return out.reshape(b, -1, c, length)

    def export_module(self) -> nn.Module:
        raise ModelError(f"{type(self).__name__} has no ONNX export: its STFT and inverse STFT are complex-valued "
                         "torch operations; run it on torch (--runtime torch)")


@register("bs_roformer")
class BSRoformer(_Roformer):
    """Contiguous bands of ``freqs_per_bands`` bins."""

    params_class = BSRoformerParams

    @classmethod
    def _check_bands(cls, params: BSRoformerParams) -> None:
        bands, n_bins = params.freqs_per_bands, params.stft_n_fft // 2 + 1
        if len(bands) < 2 or min(bands) < 1 or sum(bands) != n_bins:
            raise ConfigError(f"model.freqs_per_bands: needs >= 2 bands of >= 1 bin adding up to the {n_bins} bins "
                              f"of stft_n_fft {params.stft_n_fft}, got {len(bands)} bands of {sum(bands)} bins")

    def band_layout(self) -> list[int]:
        return list(self.params.freqs_per_bands)

    def band_inputs(self, spec: torch.Tensor) -> torch.Tensor:
        return spec.reshape(*spec.shape[:2], -1)

    def bin_masks(self, masks: torch.Tensor, n_bins: int) -> torch.Tensor:
        return torch.view_as_complex(masks.reshape(*masks.shape[:3], n_bins, self.channels, 2))


@register("mel_band_roformer")
class MelBandRoformer(_Roformer):
    """Overlapping bands under mel filters; a bin's mask is the mean of its bands' masks."""

    params_class = MelBandRoformerParams
    norm_each_transformer = True
    extra_mask_layers = 1

    @classmethod
    def _check_bands(cls, params: MelBandRoformerParams) -> None:
        if params.num_bands < 2 or params.sample_rate < 1:
            raise ConfigError(f"model.num_bands: needs >= 2 bands and sample_rate >= 1, got {params.num_bands} "
                              f"and {params.sample_rate}")
        layout = mel_band_layout(params.sample_rate, params.stft_n_fft, params.num_bands)
        empty, uncovered = int((~layout.any(dim=1)).sum()), int((~layout.any(dim=0)).sum())
        if empty or uncovered:
            raise ConfigError(f"model.num_bands: {params.num_bands} mel bands at stft_n_fft {params.stft_n_fft} leave "
                              f"{empty} bands without a bin and {uncovered} bins under no band; use fewer bands or "
                              "a larger stft_n_fft")

    def __init__(self, params: MelBandRoformerParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        layout, channels = self._layout(), self.channels                 # (K, F)
        bins = torch.arange(layout.shape[1], device="cpu").expand_as(layout)[layout]  # band after band, ascending
        # index into the (F C) axis: bin f of channel c is f * C + c
        index = (bins[:, None] * channels + torch.arange(channels, device="cpu")).flatten()
        self.register_buffer("bin_index", index, persistent=False)
        self.register_buffer("bands_per_bin", layout.sum(dim=0).float().repeat_interleave(channels), persistent=False)

    def _layout(self) -> torch.Tensor:
        p = self.params
        return mel_band_layout(p.sample_rate, p.stft_n_fft, p.num_bands)

    def band_layout(self) -> list[int]:
        return self._layout().sum(dim=1).tolist()

    def band_inputs(self, spec: torch.Tensor) -> torch.Tensor:
        b, t = spec.shape[:2]
        return spec.reshape(b, t, -1, 2)[:, :, self.bin_index].reshape(b, t, -1)

    def bin_masks(self, masks: torch.Tensor, n_bins: int) -> torch.Tensor:
        b, s, t = masks.shape[:3]
        band_masks = torch.view_as_complex(masks.reshape(b, s, t, -1, 2).contiguous())
        summed = band_masks.new_zeros(b, s, t, n_bins * self.channels).index_add_(3, self.bin_index, band_masks)
        return (summed / self.bands_per_bin).reshape(b, s, t, n_bins, self.channels)
