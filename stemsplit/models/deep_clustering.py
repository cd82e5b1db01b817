"""Deep clustering (chimera): a BLSTM embeds every time-frequency bin; k-means on the embeddings
gives binary masks; a mask head trained beside the embeddings names the clusters.

Shape letters: B batch, C channels, F frequency bins, T frames, S stems, D embedding size,
H hidden size, N bins of a segment (C * F * T).

Training: the embeddings V (unit vectors, one per bin) learn the affinity target: V V^T
close to Y Y^T, where Y is each bin's dominant stem as a one-hot row, so bins of one stem
point the same way and bins of different stems are orthogonal (``training/affinity.py``
computes the loss in its low-rank form, never the N x N matrix). The mask head (one sigmoid
mask per stem, channel and bin, as the lstm family's) is trained on the stems' magnitudes with
weight ``mask_weight``: the chimera network of Luo et al. (2017).

Separation (``stem_magnitudes``): spherical k-means with S clusters on one segment's
embeddings (weighted by the mixture's magnitude, so silence does not move the centroids)
gives every bin one cluster, hence binary masks. Clusters have no names of their own, and a
plain k-means labels them in a different order in every segment. Here each cluster is named by
the mask head: it goes to the stem whose mask is largest, weighted by magnitude, over the
cluster's bins. The naming depends only on the stems' masks, so a stem keeps its name from
one segment to the next with no permutation to resolve. Two clusters may go to one stem (a
stem that is silent in a segment gets no bins) and the k-means starts from the mask head's
stem centroids, which makes it deterministic.

Why the chimera head rather than a per-cluster classifier: the mask head is trained on the
same magnitude target as the other spectral families, so it is a working separator on its own
(``separation: mask_head``) and a fair comparison point for the clustering; and training the
two heads together is what made deep clustering work well on music (chimera++). A classifier
would need its own labels and adds nothing the masks do not already say about a cluster.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import MethodModule, SeparationModel
from stemsplit.models.common import BinNorm
from stemsplit.models.registry import register

SEPARATIONS = ("kmeans", "mask_head")


@dataclass
class DeepClusteringParams:
    """BLSTM embedding network with a chimera mask head."""

    hidden_size: int = 256  # BLSTM output width (split over two directions)
    num_layers: int = 2
    embedding_size: int = 20
    dropout: float = 0.2
    mask_weight: float = 1.0  # weight of the mask head's magnitude loss beside the affinity loss
    kmeans_iterations: int = 10
    clusters: int = 0  # k-means clusters per segment; 0: one per stem
    separation: str = "kmeans"  # kmeans: binary masks from clustering; mask_head: the soft masks


def _exporting() -> bool:
    """True while torch traces the model for ONNX export (no data-dependent shortcuts then)."""
    compiler = getattr(torch, "compiler", None)
    return torch.jit.is_tracing() or bool(compiler is not None and compiler.is_exporting())


def _reseed(x: torch.Tensor, w: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """Unit centroids (B, K, D) from (B, K, D) weighted sums of x (B, N, D) with weights w (B, N).

    A cluster with nothing in it (a stem the mask head calls silent, or one that lost every bin)
    restarts at the loudest bin that is least like the other centroids, so that all K clusters
    stay in use. Deterministic. Written without data-dependent Python control flow (a fixed
    loop over the K clusters, ``where`` for the choice) so that the ONNX export can trace it;
    eager runs skip the loop when no cluster is empty, as they nearly always are.
    """
    empty = sums.norm(dim=-1) < 1e-12                                   # (B, K)
    centroids = F.normalize(sums, dim=-1)
    if not _exporting() and not bool(empty.any()):
        return centroids
    cols = list(centroids.unbind(1))                                    # K of (B, D)
    sims = list((x @ centroids.transpose(1, 2)).unbind(2))              # K of (B, N)
    flags = list(empty.unbind(1))                                       # K of (B,)
    for k in range(len(cols)):
        # the nearest other centroid of every bin, among those in use (0 when there is none)
        in_use = torch.stack([~f for f in flags], dim=1)[:, None, :]    # (B, 1, K)
        sim = torch.stack(sims, dim=2).masked_fill(~in_use, float("-inf"))
        nearest = sim.amax(dim=2)
        nearest = torch.where(torch.isinf(nearest), torch.zeros_like(nearest), nearest)   # (B, N)
        pick = torch.argmax(w * (1 - nearest), dim=1)                   # (B,)
        candidate = x.gather(1, pick[:, None, None].expand(-1, 1, x.shape[2]))[:, 0]   # (B, D)
        restart = flags[k][:, None]
        cols[k] = torch.where(restart, candidate, cols[k])
        sims[k] = torch.where(restart, (x @ candidate[:, :, None])[..., 0], sims[k])
        flags[k] = torch.zeros_like(flags[k])
    return torch.stack(cols, dim=1)


def _one_hot(index: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, N) cluster indices -> (B, N, K) one-hot rows (a comparison, which ONNX exports)."""
    return (index[..., None] == torch.arange(k, device=index.device)).to(dtype)


def kmeans_masks_batch(emb: torch.Tensor, masks: torch.Tensor, mag: torch.Tensor,
                       iterations: int, clusters: int = 0) -> torch.Tensor:
    """Binary masks (B, S, C, F, T) from embeddings (B, C, F, T, D), mask-head masks
    (B, S, C, F, T) and magnitudes (B, C, F, T): ``kmeans_binary_masks`` for a batch, in tensor
    ops only (sums over clusters are one-hot products), so that it exports to ONNX."""
    b, s = masks.shape[:2]
    x = emb.reshape(b, -1, emb.shape[-1])                               # (B, N, D)
    w = mag.reshape(b, -1)                                              # (B, N)
    soft = masks.reshape(b, s, -1) * w[:, None]                         # (B, S, N): magnitude per stem
    k = max(clusters, s)
    sums = soft @ x                                                     # (B, S, D)
    if k > s:  # extra clusters: seeded by _reseed
        sums = torch.cat([sums, sums.new_zeros(b, k - s, x.shape[2])], dim=1)
    centroids = _reseed(x, w, sums)                                     # (B, K, D)
    for _ in range(iterations):
        assign = (x @ centroids.transpose(1, 2)).argmax(dim=2)          # (B, N)
        sums = _one_hot(assign, k, x.dtype).transpose(1, 2) @ (x * w[..., None])
        centroids = _reseed(x, w, sums)
    assign = (x @ centroids.transpose(1, 2)).argmax(dim=2)
    # name each cluster by the stem whose mask holds the most of its magnitude
    votes = _one_hot(assign, k, soft.dtype).transpose(1, 2) @ soft.transpose(1, 2)   # (B, cluster, stem)
    stem_of_bin = votes.argmax(dim=2).gather(1, assign)                 # (B, N)
    binary = stem_of_bin[:, None, :] == torch.arange(s, device=emb.device)[None, :, None]
    return binary.to(masks.dtype).reshape(masks.shape)


def kmeans_binary_masks(emb: torch.Tensor, masks: torch.Tensor, mag: torch.Tensor,
                        iterations: int, clusters: int = 0) -> torch.Tensor:
    """Binary masks (S, C, F, T) from one segment's embeddings (C, F, T, D).

    ``masks`` (S, C, F, T), the mask head's output, starts the centroids and names the clusters;
    ``mag`` (C, F, T) weighs every bin. ``clusters`` (0: one per stem) may exceed the stems:
    the extra centroids start at loud bins unlike the others, and every cluster is named.
    """
    return kmeans_masks_batch(emb[None], masks[None], mag[None], iterations, clusters)[0]


@register("deep_clustering")
class DeepClustering(SeparationModel):
    """Magnitude (B, C, F, T) -> (embeddings (B, C, F, T, D), masks (B, S, C, F, T)); affinity loss."""

    params_class = DeepClusteringParams
    input_kind, output_kind, target, default_loss = "magnitude", "embeddings", "affinity", "affinity"

    @classmethod
    def check_params(cls, params: DeepClusteringParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.hidden_size < 2 or params.hidden_size % 2:
            raise ConfigError(f"model.hidden_size: {params.hidden_size} must be even and >= 2 "
                              "(it is split over two directions)")
        if params.num_layers < 1 or params.embedding_size < 2:
            raise ConfigError("model.num_layers must be >= 1 and model.embedding_size >= 2")
        if not 0 <= params.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {params.dropout}")
        if params.mask_weight < 0 or params.kmeans_iterations < 0 or params.clusters < 0:
            raise ConfigError("model.mask_weight, model.kmeans_iterations and model.clusters: must be >= 0")
        if params.separation not in SEPARATIONS:
            raise ConfigError(f"model.separation: {params.separation!r} is not one of: {', '.join(SEPARATIONS)}")
        if params.separation == "mask_head" and params.mask_weight == 0:
            raise ConfigError("model.separation: mask_head needs a trained mask head; set model.mask_weight > 0")

    @classmethod
    def mask_head_weight(cls, params: DeepClusteringParams) -> float:
        return params.mask_weight

    def __init__(self, params: DeepClusteringParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        h, d = params.hidden_size, params.embedding_size
        self.norm = BinNorm(n_bins)
        self.encoder = nn.Sequential(nn.Linear(n_channels * n_bins, h), nn.LayerNorm(h), nn.Tanh())
        self.blstm = nn.LSTM(h, h // 2, num_layers=params.num_layers, bidirectional=True, batch_first=True,
                             dropout=params.dropout if params.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(params.dropout)
        self.embed = nn.Linear(h, n_channels * n_bins * d)              # the clustering head
        self.mask = nn.Linear(h, n_stems * n_channels * n_bins)          # the chimera mask head

    def forward(self, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, F, T) magnitude -> unit embeddings (B, C, F, T, D) and masks (B, S, C, F, T)."""
        b, c, f, t = mag.shape
        x = self.norm(mag).permute(0, 3, 1, 2).reshape(b, t, c * f)    # (B, T, C*F)
        y, _ = self.blstm(self.encoder(x))                              # (B, T, H)
        y = self.drop(y)
        emb = self.embed(y).reshape(b, t, c, f, -1).permute(0, 2, 3, 1, 4)
        masks = torch.sigmoid(self.mask(y)).reshape(b, t, self.n_stems, c, f).permute(0, 2, 3, 4, 1)
        return F.normalize(emb, dim=-1), masks

    @property
    def exported_output_kind(self) -> str:
        return "masks"

    def separation_masks(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks: binary k-means masks, or the mask head's."""
        emb, masks = self(mag)
        if self.params.separation == "kmeans":
            p = self.params
            masks = kmeans_masks_batch(emb, masks, mag, p.kmeans_iterations, p.clusters)
        return masks

    def export_module(self) -> nn.Module:
        return MethodModule(self, "separation_masks")

    def stem_magnitudes(self, model_input: torch.Tensor, mix_mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) -> (B, S, C, F, T): binary k-means masks (or the mask head's) times the mixture."""
        return self.separation_masks(model_input) * mix_mag.unsqueeze(1)
