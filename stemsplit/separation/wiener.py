"""Multichannel Wiener post-filter (EM refinement of the sources' spectra and spatial covariances), numpy.

Given the mixture STFT and the model's magnitude estimates, each iteration re-estimates
each source's power spectral density v_j(f, t) and its spatial covariance R_j(f), then
applies the multichannel Wiener gain  v_j R_j (sum_k v_k R_k)^-1  to the mixture. This is the
post-filter Open-Unmix uses; here written for (S, C, F, T) complex64 arrays with C <= 2, the
2x2 algebra spelled out element by element (no batched matmul, no (S, C, C, F, T) outer product).

Every quantity in an iteration belongs to one frequency bin (R_j(f) sums over frames only),
so the filter runs on blocks of bins, each block through all its iterations, with the same
result as one pass over the whole spectrogram. The block is sized so that an (S, C, C, bins, T)
complex64 array would stay near ``_BLOCK_BYTES``: the working memory beyond the (S, C, F, T)
output does not grow with the whole spectrogram, and a block's temporaries stay cache-sized.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-10
_BLOCK_BYTES = 16 << 20  # an (S, C, C, bins, T) complex64 array of one block, in bytes


def block_bins(n_stems: int, channels: int, frames: int, itemsize: int = 8) -> int:
    """Frequency bins per block: (S, C, C, bins, T) of ``itemsize``-byte values fits _BLOCK_BYTES."""
    per_bin = n_stems * channels * channels * max(frames, 1) * itemsize
    return max(1, _BLOCK_BYTES // per_bin)


def _power(z: np.ndarray) -> np.ndarray:
    """|z|^2 without the square root of abs()."""
    return z.real * z.real + z.imag * z.imag


def _refine(mix: np.ndarray, est: np.ndarray, iterations: int) -> np.ndarray:
    """EM iterations on one block of bins: mix (C, F, T), est (S, C, F, T) -> (S, C, F, T) complex64."""
    c = mix.shape[0]
    for _ in range(iterations):
        # --- M-step: PSD per source, and a spatial covariance per source and frequency
        v = _power(est).mean(axis=1)                                     # (S, F, T)
        norm = 1.0 / (v.sum(axis=-1) + _EPS)                             # (S, F)
        # r[a][b]: (S, F, 1) = sum_t est_a conj(est_b) / sum_t v; r[b][a] = conj(r[a][b])
        r = [[None] * c for _ in range(c)]
        for a in range(c):
            r[a][a] = (_power(est[:, a]).sum(axis=-1) * norm)[..., None]
            for b in range(a + 1, c):
                r[a][b] = ((est[:, a] * est[:, b].conj()).sum(axis=-1) * norm)[..., None]
                r[b][a] = r[a][b].conj()
        # --- E-step: Wiener gains applied to the mixture: est_j = v_j R_j cov^-1 x
        cov = [[(v * r[a][b]).sum(axis=0) for b in range(c)] for a in range(c)]  # (F, T) each
        if c == 1:
            inv_x = [mix[0] / (cov[0][0] + _EPS)]
        else:
            c00, c11 = cov[0][0] + _EPS, cov[1][1] + _EPS
            c01, c10 = cov[0][1], cov[1][0]
            det = c00 * c11 - c01 * c10
            det = np.where(np.abs(det) < _EPS, np.complex64(_EPS), det)
            x0, x1 = mix[0] / det, mix[1] / det
            inv_x = [c11 * x0 - c01 * x1, c00 * x1 - c10 * x0]           # (F, T) each
        est = np.stack([v * sum(r[a][b] * inv_x[b] for b in range(c)) for a in range(c)], axis=1)
    return est.astype(np.complex64, copy=False)


def wiener(mix: np.ndarray, mags: np.ndarray, iterations: int, bins: int | None = None) -> np.ndarray:
    """mix (C, F, T) complex, mags (S, C, F, T) magnitudes -> estimates (S, C, F, T) complex64.

    ``iterations=0`` is plain ratio masking with the mixture phase. ``bins`` overrides the
    block size (frequency bins per block; default: ``block_bins``); the result does not
    depend on it beyond float rounding.
    """
    mix = np.asarray(mix, dtype=np.complex64)
    mags = np.asarray(mags, dtype=np.float32)
    c, n_bins, frames = mix.shape
    if iterations > 0 and c > 2:
        raise ValueError("the Wiener filter supports mono and stereo only")
    abs_mix = np.abs(mix)
    # one scale for all blocks: keeps powers in float32 range
    scale = np.float32(max(float(abs_mix.max(initial=0.0)), 1.0))
    # the mixture's phase; a silent bin has angle 0, as torch.angle gives it
    phase = np.divide(mix, abs_mix, out=np.ones_like(mix), where=abs_mix > 0)
    est = mags * phase[None]
    if iterations <= 0:
        return est
    mix = mix / scale
    est /= scale
    step = bins or block_bins(mags.shape[0], c, frames, est.itemsize)
    for lo in range(0, n_bins, step):
        est[:, :, lo:lo + step] = _refine(mix[:, lo:lo + step], est[:, :, lo:lo + step], iterations)
    est *= scale
    return est
