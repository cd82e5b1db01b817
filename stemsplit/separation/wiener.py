"""Multichannel Wiener post-filter (EM refinement of the sources' spectra and spatial covariances).

Given the mixture STFT and the model's magnitude estimates, each iteration re-estimates
each source's power spectral density v_j(f, t) and its spatial covariance R_j(f), then
applies the multichannel Wiener gain  v_j R_j (sum_k v_k R_k)^-1  to the mixture. This is the
post-filter Open-Unmix uses; here written for (S, C, F, T) tensors with C <= 2 inverted in
closed form.
"""
from __future__ import annotations

import torch

_EPS = 1e-10


def _inv2x2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 2, 2) complex matrices."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det.abs() < _EPS, torch.full_like(det, _EPS), det)
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return inv / det[..., None, None]


def wiener(mix: torch.Tensor, mags: torch.Tensor, iterations: int) -> torch.Tensor:
    """mix (C, F, T) complex, mags (S, C, F, T) magnitudes -> estimates (S, C, F, T) complex.

    ``iterations=0`` is plain ratio masking with the mixture phase.
    """
    c = mix.shape[0]
    scale = mix.abs().amax().clamp_min(1.0)  # keep powers in a range float32 handles
    mix = mix / scale
    mags = mags / scale
    est = mags * torch.exp(1j * torch.angle(mix))[None]
    if iterations <= 0:
        return est * scale
    if c > 2:
        raise ValueError("the Wiener filter supports mono and stereo only")
    eye = torch.eye(c, dtype=mix.dtype, device=mix.device)
    for _ in range(iterations):
        # --- M-step: PSD per source and a spatial covariance per source and frequency
        v = (est.abs() ** 2).mean(dim=1)                                    # (S, F, T)
        outer = est[:, :, None] * est[:, None, :].conj()                    # (S, C, C, F, T)
        r = outer.sum(-1) / (v.sum(-1)[:, None, None] + _EPS)               # (S, C, C, F)
        # --- E-step: Wiener gains applied to the mixture
        cov = (v[:, None, None] * r[..., None]).sum(0) + _EPS * eye[..., None, None]  # (C, C, F, T)
        cov_t = cov.permute(2, 3, 0, 1)                                     # (F, T, C, C)
        inv = _inv2x2(cov_t) if c == 2 else 1.0 / cov_t
        x = mix.permute(1, 2, 0)[..., None]                                 # (F, T, C, 1)
        inv_x = inv @ x                                                     # (F, T, C, 1)
        r_ft = r.permute(0, 3, 1, 2)[:, :, None]                            # (S, F, 1, C, C)
        gain_x = v[..., None, None] * (r_ft @ inv_x[None])                  # (S, F, T, C, 1)
        est = gain_x[..., 0].permute(0, 3, 1, 2)                            # (S, C, F, T)
    return est * scale
