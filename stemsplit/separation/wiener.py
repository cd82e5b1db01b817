"""Multichannel Wiener post-filter (EM refinement of the sources' spectra and spatial covariances).

Given the mixture STFT and the model's magnitude estimates, each iteration re-estimates
each source's power spectral density v_j(f, t) and its spatial covariance R_j(f), then
applies the multichannel Wiener gain  v_j R_j (sum_k v_k R_k)^-1  to the mixture. This is the
post-filter Open-Unmix uses; here written for (S, C, F, T) tensors with C <= 2 inverted in
closed form.

Every quantity in an iteration belongs to one frequency bin (R_j(f) sums over frames only),
so the filter runs on blocks of bins, each block through all its iterations, with the same
result as one pass over the whole spectrogram. The block is sized so that its largest
temporary, the (S, C, C, bins, T) outer products, stays near ``_BLOCK_BYTES``: the working
memory beyond the (S, C, F, T) output no longer grows with stems x channels^2 x the whole
spectrogram.
"""
from __future__ import annotations

import torch

_EPS = 1e-10
_BLOCK_BYTES = 16 << 20  # the (S, C, C, bins, T) temporary of one block, in bytes


def _inv2x2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 2, 2) complex matrices."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det.abs() < _EPS, torch.full_like(det, _EPS), det)
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return inv / det[..., None, None]


def block_bins(n_stems: int, channels: int, frames: int, itemsize: int = 8) -> int:
    """Frequency bins per block: (S, C, C, bins, T) of ``itemsize``-byte values fits _BLOCK_BYTES."""
    per_bin = n_stems * channels * channels * max(frames, 1) * itemsize
    return max(1, _BLOCK_BYTES // per_bin)


def _refine(mix: torch.Tensor, est: torch.Tensor, iterations: int) -> torch.Tensor:
    """EM iterations on one block of bins: mix (C, F, T), est (S, C, F, T) -> (S, C, F, T)."""
    c = mix.shape[0]
    eye = torch.eye(c, dtype=mix.dtype, device=mix.device)
    for _ in range(iterations):
        # --- M-step: PSD per source and a spatial covariance per source and frequency
        v = (est.abs() ** 2).mean(dim=1)                                    # (S, F, T)
        outer = est[:, :, None] * est[:, None, :].conj()                    # (S, C, C, F, T)
        r = outer.sum(-1) / (v.sum(-1)[:, None, None] + _EPS)               # (S, C, C, F)
        del outer
        # --- E-step: Wiener gains applied to the mixture
        cov = (v[:, None, None] * r[..., None]).sum(0) + _EPS * eye[..., None, None]  # (C, C, F, T)
        cov_t = cov.permute(2, 3, 0, 1)                                     # (F, T, C, C)
        inv = _inv2x2(cov_t) if c == 2 else 1.0 / cov_t
        x = mix.permute(1, 2, 0)[..., None]                                 # (F, T, C, 1)
        inv_x = inv @ x                                                     # (F, T, C, 1)
        r_ft = r.permute(0, 3, 1, 2)[:, :, None]                            # (S, F, 1, C, C)
        gain_x = v[..., None, None] * (r_ft @ inv_x[None])                  # (S, F, T, C, 1)
        est = gain_x[..., 0].permute(0, 3, 1, 2)                            # (S, C, F, T)
    return est


def wiener(mix: torch.Tensor, mags: torch.Tensor, iterations: int, bins: int | None = None) -> torch.Tensor:
    """mix (C, F, T) complex, mags (S, C, F, T) magnitudes -> estimates (S, C, F, T) complex.

    ``iterations=0`` is plain ratio masking with the mixture phase. ``bins`` overrides the
    block size (frequency bins per block; default: ``block_bins``); the result does not
    depend on it beyond float rounding.
    """
    c, n_bins, frames = mix.shape
    scale = mix.abs().amax().clamp_min(1.0)  # one scale for all blocks: keeps powers in float32 range
    mix = mix / scale
    mags = mags / scale
    est = mags * torch.exp(1j * torch.angle(mix))[None]
    if iterations <= 0:
        return est * scale
    if c > 2:
        raise ValueError("the Wiener filter supports mono and stereo only")
    step = bins or block_bins(mags.shape[0], c, frames, est.element_size())
    for lo in range(0, n_bins, step):
        est[:, :, lo:lo + step] = _refine(mix[:, lo:lo + step], est[:, :, lo:lo + step], iterations)
    return est * scale
