"""Loss terms added to a model's main loss: weighted SDR, stem combinations, mixture consistency.

Shape letters: B batch, S stems, C channels, L samples, F frequency bins, T frames.

- ``weighted_sdr`` (``train.wsdr_weight``): the weighted SDR of Choi et al. (2019), as in
  CrossNet-Open-Unmix's time-domain term: for a stem y, its estimate ŷ and the mixture x, with
  z = x − y and ẑ = x − ŷ, ``−(α cos(y, ŷ) + (1 − α) cos(z, ẑ))`` where α = |y|² / (|y|² + |z|²).
  It lies in [−1, 1]; −1 is a perfect estimate. It scores the waveform, through the iSTFT.
- ``combinations`` (``train.combination_loss``): CrossNet-Open-Unmix's combination loss; the sums
  of every 1..S−1 stems, estimated and true, so a model is also trained on what it puts in the
  other stems.
- ``mixture_consistency`` (``train.mixture_consistency_weight``): the magnitude of what the stem
  estimates leave unexplained, |Σ_s Ŝ_s − X|, relative to |X|. All estimates share the
  mixture's phase, so this is the spectral L1 of (sum of estimates − mixture).
"""
from __future__ import annotations

from itertools import combinations as _combinations

import torch

_EPS = 1e-8


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity over the last axis: (..., L), (..., L) -> (...)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + _EPS)


def weighted_sdr(estimate: torch.Tensor, target: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """estimate, target (B, S, C, L); mixture (B, C, L) -> scalar in [-1, 1], averaged over B, S, C."""
    mix = mixture.unsqueeze(1).expand_as(target)
    noise, noise_est = mix - target, mix - estimate
    energy_y = (target ** 2).sum(-1)
    energy_z = (noise ** 2).sum(-1)
    alpha = energy_y / (energy_y + energy_z + _EPS)
    return -(alpha * _cosine(target, estimate) + (1 - alpha) * _cosine(noise, noise_est)).mean()


def stem_combinations(n_stems: int) -> list[tuple[int, ...]]:
    """Every set of 1..S-1 stems (14 for four stems); the single stems first."""
    return [c for k in range(1, n_stems) for c in _combinations(range(n_stems), k)]


def combination_sums(x: torch.Tensor, n_stems: int) -> torch.Tensor:
    """(B, S, ...) -> (B, K, ...): the sum over each of the K stem combinations."""
    return torch.stack([x[:, list(c)].sum(1) for c in stem_combinations(n_stems)], dim=1)


def mixture_consistency(est_mag: torch.Tensor, mix_mag: torch.Tensor) -> torch.Tensor:
    """est_mag (B, S, C, F, T), mix_mag (B, C, F, T) -> mean |Σ_s est − mix| / mean |mix|."""
    return (est_mag.sum(1) - mix_mag).abs().mean() / (mix_mag.abs().mean() + _EPS)
