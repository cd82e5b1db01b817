"""Band-split RNN: the spectrum cut into bands, modelled across time and across bands.

Shape letters: B batch, C channels, F frequency bins, Fb bins the bands cover (max_bin),
T frames, S stems, K bands, D band feature size, H hidden size per LSTM direction.

The bins below ``max_bin`` are cut into K bands whose width grows with frequency (equal steps
on a mel-like warp of the bin index), so low notes, where harmonics sit a few bins apart, get
narrow bands and the sparse top of the spectrum wide ones. Each band's normalised log
magnitudes (all channels) are projected to D features by the band's own linear layer and a
layer norm. Then N blocks alternate two residual BiLSTMs, both shared by every band: one over
the frames of each band (time), one over the K bands of each frame (how a partial in one band
relates to its harmonics in the others). A per-band MLP maps the features back to one mask
per stem, channel and bin of the band; the top band's head gives one more mask per stem and
channel, spread over every bin above ``max_bin``. After Luo and Yu's BSRNN, at a size that runs
on a CPU. Recurrent over time, so ``context_frames`` is None (unbounded), as for lstm.

``causal: true`` makes the time pass a forward-only LSTM (2H wide, the BiLSTM's output width):
every other layer works within one frame, so output frame t then depends on frames <= t only
and the model can stream (``forward_stream`` carries each block's time-LSTM state).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register


@dataclass
class BandSplitParams:
    """K mel-like bands below max_bin, D features each, N blocks of time and band BiLSTMs."""

    num_bands: int = 24
    max_bin: int = 1487  # ~16 kHz at n_fft 4096 / 44.1 kHz: the bins the bands cover
    feature_size: int = 64  # D, per band
    hidden_size: int = 48  # H, per direction of each BiLSTM
    num_blocks: int = 2  # N
    mlp_size: int = 128  # hidden width of each band's mask head
    dropout: float = 0.1
    causal: bool = False  # forward-only time LSTMs: a streaming model (see the module doc)


def band_edges(n_bins: int, max_bin: int, num_bands: int) -> list[int]:
    """K + 1 bin edges from 0 to ``max_bin``: band k is bins [edges[k], edges[k + 1]).

    Equal steps on log(1 + bin / corner) with the corner at n_bins / 32 (about 690 Hz at
    44.1 kHz for any n_fft): linear below the corner, logarithmic above, like the mel scale.
    Every band gets at least one bin, and the widths are sorted so that they never shrink
    upwards (rounding and the one-bin floor could otherwise leave a narrow band above a wider one).
    """
    corner = n_bins / 32
    top = math.log1p(max_bin / corner)
    edges = [0]
    for k in range(1, num_bands):
        b = round(corner * math.expm1(top * k / num_bands))
        edges.append(min(max(b, edges[-1] + 1), max_bin - (num_bands - k)))
    edges.append(max_bin)
    widths = sorted(hi - lo for lo, hi in zip(edges[:-1], edges[1:]))
    return [0] + [sum(widths[: k + 1]) for k in range(num_bands)]


class AxisLSTM(nn.Module):
    """Pre-norm LSTM along the middle axis with a residual: (N, L, D) -> (N, L, D).

    Bidirectional with H per direction, or forward-only with 2H (``bidirectional=False``): the
    same output width either way."""

    def __init__(self, d: int, hidden: int, dropout: float, bidirectional: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.rnn = nn.LSTM(d, hidden if bidirectional else 2 * hidden, batch_first=True, bidirectional=bidirectional)
        self.proj = nn.Linear(2 * hidden, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x (N, L, D) and the LSTM's (h, c) before it -> (N, L, D) and (h, c) after it."""
        y, after = self.rnn(self.norm(x), state)
        return x + self.drop(self.proj(y)), after


class BandBlock(nn.Module):
    """One time pass (per band, over frames) then one band pass (per frame, over bands)."""

    def __init__(self, d: int, hidden: int, dropout: float, causal: bool = False):
        super().__init__()
        self.time = AxisLSTM(d, hidden, dropout, bidirectional=not causal)
        self.band = AxisLSTM(d, hidden, dropout)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(B, K, T, D) and the time LSTM's (h, c) (1, B*K, 2H) -> (B, K, T, D) and (h, c) after."""
        b, k, t, d = x.shape
        y, after = self.time(x.reshape(b * k, t, d), state)
        x = y.reshape(b, k, t, d).transpose(1, 2).reshape(b * t, k, d)
        x = self.band(x)[0].reshape(b, t, k, d)
        return x.transpose(1, 2), after


class MaskHead(nn.Module):
    """One band's MLP: (B, T, D) features -> (B, O, T) mask logits, O = S * C * band bins.

    The output is written frames-last, already the (B, S, C, w, T) layout of the masks, so the
    bands join along F without transposing the largest tensor of the network."""

    def __init__(self, d: int, hidden: int, out: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(d, hidden), nn.Tanh())
        self.out = nn.Linear(hidden, out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.hidden(z).transpose(1, 2)                                # (B, M, T)
        return torch.matmul(self.out.weight, h) + self.out.bias[:, None]


@register("band_split")
class BandSplitSeparator(SeparationModel):
    """Magnitude (B, C, F, T) -> masks (B, S, C, F, T); trained on magnitudes with MSE."""

    params_class = BandSplitParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "mse"

    @classmethod
    def check_params(cls, params: BandSplitParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if not 0 < params.max_bin <= n_bins:
            raise ConfigError(f"model.max_bin: {params.max_bin} must be in [1, {n_bins}] (the STFT's bins)")
        if not 1 <= params.num_bands <= params.max_bin:
            raise ConfigError(f"model.num_bands: {params.num_bands} must be in [1, model.max_bin={params.max_bin}] "
                              "(every band needs a bin)")
        for field in ("feature_size", "hidden_size", "mlp_size"):
            if getattr(params, field) < 1:
                raise ConfigError(f"model.{field}: must be >= 1, got {getattr(params, field)}")
        if params.num_blocks < 1:
            raise ConfigError(f"model.num_blocks: must be >= 1, got {params.num_blocks}")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")

    def __init__(self, params: BandSplitParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        d, m = params.feature_size, params.mlp_size
        self.max_bin = params.max_bin
        self.edges = band_edges(n_bins, params.max_bin, params.num_bands)
        widths = [hi - lo for lo, hi in zip(self.edges[:-1], self.edges[1:])]
        self.above = n_bins - self.max_bin  # bins the top band's extra mask covers

        self.norm = BinNorm(self.max_bin)
        self.split = nn.ModuleList(nn.Sequential(nn.Linear(n_channels * w, d), nn.LayerNorm(d)) for w in widths)
        self.blocks = nn.ModuleList(BandBlock(d, params.hidden_size, params.dropout, params.causal)
                                    for _ in range(params.num_blocks))
        self.final_norm = nn.LayerNorm(d)
        extra = [0] * (len(widths) - 1) + [1 if self.above else 0]
        self.heads = nn.ModuleList(MaskHead(d, m, n_stems * n_channels * (w + e)) for w, e in zip(widths, extra))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        return self._masks(mag, None)[0]

    def _masks(self, mag: torch.Tensor, state: list | None) -> tuple[torch.Tensor, list]:
        """Masks and each block's time-LSTM state after these frames (``state``: before them)."""
        b, c, _, t = mag.shape
        x = self.norm(mag[:, :, : self.max_bin]).permute(0, 3, 1, 2)    # (B, T, C, Fb)
        bands = [proj(x[..., lo:hi].reshape(b, t, -1))                    # K x (B, T, D)
                 for proj, lo, hi in zip(self.split, self.edges[:-1], self.edges[1:])]
        z = torch.stack(bands, dim=1)                                     # (B, K, T, D)
        after = []
        for i, block in enumerate(self.blocks):
            z, block_state = block(z, None if state is None else state[i])
            after.append(block_state)
        z = self.final_norm(z)
        # the sigmoid per band, before the join: the join is then the graph's last node, which an
        # ONNX runtime writes straight into the caller's output (no second full-size tensor), and
        # the bins above max_bin repeat a value already squashed
        masks = [torch.sigmoid(head(z[:, i])).reshape(b, self.n_stems, c, -1, t)  # K x (B, S, C, w, T)
                 for i, head in enumerate(self.heads)]
        if self.above:  # the top band's last value, repeated over the bins above max_bin
            top = masks[-1]
            masks[-1] = top[:, :, :, :-1]
            masks.append(top[:, :, :, -1:].expand(b, self.n_stems, c, self.above, t))
        return torch.cat(masks, dim=3), after                             # (B, S, C, F, T)

    # --- streaming (causal: true) --------------------------------------------------------

    def is_causal(self) -> bool:
        return self.params.causal

    def stream_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """(h, c) per block, each (1, batch * K, 2H) zeros: the time LSTMs before any frame."""
        if not self.params.causal:
            return super().stream_state(batch)
        shape = (1, batch * len(self.heads), 2 * self.params.hidden_size)
        weight = self.norm.mean
        return tuple(torch.zeros(shape, dtype=weight.dtype, device=weight.device)
                     for _ in range(2 * len(self.blocks)))

    def forward_stream(self, mag: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, C, F, T) frames and the state before them -> (masks (B, S, C, F, T), *state after)."""
        if not self.params.causal:
            return super().forward_stream(mag, *state)
        pairs = [(state[2 * i], state[2 * i + 1]) for i in range(len(self.blocks))]
        masks, after = self._masks(mag, pairs)
        return (masks, *(tensor for pair in after for tensor in pair))
