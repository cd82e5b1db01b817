"""The deep-clustering affinity loss, for models whose ``target`` is ``affinity``.

Shape letters: B batch, S stems, C channels, F frequency bins, T frames, N = C * F * T bins,
D embedding size.

Each bin i has a unit embedding v_i and a one-hot label y_i (its dominant stem). The loss is
the weighted distance between the two affinity matrices,

    sum_ij w_i w_j (v_i . v_j - y_i . y_j)^2 = ||V'^T V'||^2 - 2 ||V'^T Y'||^2 + ||Y'^T Y'||^2,

with V' = W^(1/2) V and Y' = W^(1/2) Y. The right-hand side needs only D x D, D x S and S x S
products, so the N x N affinity matrix (10^10 entries for a 6-s excerpt) is never built.
Bins are weighted by the mixture's magnitude: loud bins decide what a listener hears, and
silent bins have no dominant stem worth learning. The sum is divided by (sum_i w_i)^2, so the
loss is in [0, 2] at any excerpt length or level.

A chimera model also returns masks; they add ``mask_head_weight`` times the MSE between the
masked mixture and the stems' magnitudes (the magnitude models' mse loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.audio.stft import STFT
from stemsplit.config import Config
from stemsplit.models import model_class


def affinity_loss(emb: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the normalised weighted ||V V^T - Y Y^T||^2.

    emb (B, N, D) unit rows, labels (B, N, S) one-hot, weights (B, N) >= 0.
    """
    root = weights.clamp_min(0).sqrt().unsqueeze(-1)
    v, y = emb * root, labels * root
    vv = v.transpose(1, 2) @ v                                          # (B, D, D)
    vy = v.transpose(1, 2) @ y                                          # (B, D, S)
    yy = y.transpose(1, 2) @ y                                          # (B, S, S)
    per_item = vv.pow(2).sum((1, 2)) - 2 * vy.pow(2).sum((1, 2)) + yy.pow(2).sum((1, 2))
    return (per_item / weights.sum(1).pow(2).clamp_min(1e-12)).mean()


def dominant_stem_labels(src_mag: torch.Tensor) -> torch.Tensor:
    """(B, S, C, F, T) stem magnitudes -> (B, C, F, T, S) one-hot of the loudest stem per bin."""
    return F.one_hot(src_mag.argmax(dim=1), src_mag.shape[1]).to(src_mag.dtype)


class AffinityLoss:
    """``__call__(net, mixture (B, C, L), sources (B, S, C, L), autocast)`` -> scalar loss."""

    def __init__(self, cfg: Config):
        self.stft = STFT(cfg.stft)
        self.mask_weight = model_class(cfg.model.name).mask_head_weight(cfg.model.params)

    def __call__(self, net: nn.Module, mixture: torch.Tensor, sources: torch.Tensor, autocast=None) -> torch.Tensor:
        mix_mag = self.stft(mixture.float()).abs()                      # (B, C, F, T)
        src_mag = self.stft(sources.float()).abs()                      # (B, S, C, F, T)
        if autocast is None:
            emb, masks = net(mix_mag)
        else:
            with autocast:
                emb, masks = net(mix_mag)
        b = emb.shape[0]
        loss = affinity_loss(emb.float().reshape(b, -1, emb.shape[-1]),
                             dominant_stem_labels(src_mag).reshape(b, -1, src_mag.shape[1]),
                             mix_mag.reshape(b, -1))
        if masks is not None and self.mask_weight > 0:
            loss = loss + self.mask_weight * F.mse_loss(masks.float() * mix_mag.unsqueeze(1), src_mag)
        return loss
