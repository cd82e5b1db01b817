"""Multichannel Wiener post-filter (EM refinement of the sources' spectra and spatial covariances), numpy.

Given the mixture STFT and the model's magnitude estimates, each iteration re-estimates
each source's power spectral density v_j(f, t) and its spatial covariance R_j(f), then
applies the multichannel Wiener gain  v_j R_j (sum_k v_k R_k)^-1  to the mixture. This is the
post-filter Open-Unmix uses; here for C <= 2 channels, with the 2x2 algebra spelled out
element by element on float32 real and imaginary parts: R_j and the mixture covariance are
Hermitian, so their diagonals and the determinant are real and only one off-diagonal term is
stored. No complex temporaries, no batched matmul, no (S, C, C, F, T) outer product.

Every quantity in an iteration belongs to one frequency bin (R_j(f) sums over frames only),
so the filter runs on blocks of bins, each block through all its iterations, with the same
result as one pass over the whole spectrogram. A block is sized so that its (S, C, bins, T)
float32 working arrays stay cache-sized (``_BLOCK_BYTES``), whatever the spectrogram's size.
The last E-step computes only the stems asked for (``stems``): with ``separate.wiener_stems``
the others keep plain masking and their Wiener estimates would be thrown away.

Three settings (``separate.wiener_*``, see ``settings_of``) reproduce other conventions of the
same EM: ``window_frames`` filters runs of that many frames independently (each with its own
R_j and scale; Open-Unmix uses 300), ``scale_divisor`` divides the mixture by
max(1, max|X| / scale_divisor) before the EM (Open-Unmix and norbert: 10; ours: 1), and
``load`` is added to the diagonal of the scaled mixture covariance (Open-Unmix: sqrt(1e-10)).
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-10
_BLOCK_BYTES = 8 << 20  # an (S, C, C, bins, T) complex64 array of one block, in bytes (~76 bins at 10 s)


def block_bins(n_stems: int, channels: int, frames: int, itemsize: int = 8) -> int:
    """Frequency bins per block: (S, C, C, bins, T) of ``itemsize``-byte values fits _BLOCK_BYTES."""
    per_bin = n_stems * channels * channels * max(frames, 1) * itemsize
    return max(1, _BLOCK_BYTES // per_bin)


def _mstep(er: np.ndarray, ei: np.ndarray):
    """PSDs and spatial covariances of the estimates er + i ei (S, C, bins, T) float32.

    Returns v (S, bins, T) and, each (S, bins, 1), r00, r11 (real) and r01 = r01r + i r01i
    (r10 is its conjugate): sum_t est_a conj(est_b) / sum_t v.
    """
    power = er * er
    power += ei * ei                                                  # |est|^2 (S, C, bins, T)
    v = power.mean(axis=1)                                            # (S, bins, T)
    norm = 1.0 / (v.sum(axis=-1) + _EPS)                              # (S, bins)
    r00 = (power[:, 0].sum(axis=-1) * norm)[..., None]
    if er.shape[1] == 1:
        return v, r00, None, None, None
    r11 = (power[:, 1].sum(axis=-1) * norm)[..., None]
    # est_0 conj(est_1) = (a + ib)(c - id) = (ac + bd) + i(bc - ad)
    re = er[:, 0] * er[:, 1]
    re += ei[:, 0] * ei[:, 1]
    im = ei[:, 0] * er[:, 1]
    im -= er[:, 0] * ei[:, 1]
    r01r = (re.sum(axis=-1) * norm)[..., None]
    r01i = (im.sum(axis=-1) * norm)[..., None]
    return v, r00, r11, r01r, r01i


def _estep(mr: np.ndarray, mi: np.ndarray, v, r00, r11, r01r, r01i, stems, load):
    """Wiener gains applied to the mixture mr + i mi (C, bins, T): est_j = v_j R_j cov^-1 x.

    Returns (er, ei), each (len(stems), C, bins, T) float32, for the stems ``stems`` only
    (the mixture covariance sums over every stem all the same).
    """
    c = mr.shape[0]
    out_r = np.empty((len(stems), c) + mr.shape[1:], np.float32)
    out_i = np.empty_like(out_r)
    c00 = (v * r00).sum(axis=0)                                       # (bins, T), real
    c00 += load                                                       # diagonal loading
    if c == 1:
        inv = 1.0 / c00  # x / c00 as numpy's complex division computes it: times the reciprocal
        xr, xi = mr[0] * inv, mi[0] * inv
        for k, j in enumerate(stems):
            np.multiply(v[j], r00[j] * xr, out=out_r[k, 0])
            np.multiply(v[j], r00[j] * xi, out=out_i[k, 0])
        return out_r, out_i
    c11 = (v * r11).sum(axis=0)
    c11 += load
    c01r = (v * r01r).sum(axis=0)                                     # c01 = c01r + i c01i, c10 = conj(c01)
    c01i = (v * r01i).sum(axis=0)
    det = c00 * c11
    det -= c01r * c01r + c01i * c01i                                  # real: the covariance is Hermitian
    det[np.abs(det) < _EPS] = np.float32(_EPS)
    inv = 1.0 / det  # x / det as numpy's complex division computes it: times the reciprocal
    x0r, x0i, x1r, x1i = mr[0] * inv, mi[0] * inv, mr[1] * inv, mi[1] * inv
    # cov^-1 x (up to the 1/det already applied): [c11 x0 - c01 x1, c00 x1 - conj(c01) x0]
    a_r = c11 * x0r - (c01r * x1r - c01i * x1i)
    a_i = c11 * x0i - (c01r * x1i + c01i * x1r)
    b_r = c00 * x1r - (c01r * x0r + c01i * x0i)
    b_i = c00 * x1i - (c01r * x0i - c01i * x0r)
    for k, j in enumerate(stems):
        vj = v[j]
        # channel 0: v (r00 a + r01 b); channel 1: v (conj(r01) a + r11 b)
        np.multiply(vj, r00[j] * a_r + (r01r[j] * b_r - r01i[j] * b_i), out=out_r[k, 0])
        np.multiply(vj, r00[j] * a_i + (r01r[j] * b_i + r01i[j] * b_r), out=out_i[k, 0])
        np.multiply(vj, (r01r[j] * a_r + r01i[j] * a_i) + r11[j] * b_r, out=out_r[k, 1])
        np.multiply(vj, (r01r[j] * a_i - r01i[j] * a_r) + r11[j] * b_i, out=out_i[k, 1])
    return out_r, out_i


def _refine(mr, mi, er, ei, iterations: int, stems: list[int], load: np.float32):
    """EM iterations on one block of bins: mixture (C, bins, T) and estimates (S, C, bins, T),
    as real and imaginary float32 parts -> the ``stems``' estimates (len(stems), C, bins, T)."""
    every = list(range(er.shape[0]))
    for it in range(iterations):
        er, ei = _estep(mr, mi, *_mstep(er, ei), stems if it == iterations - 1 else every, load)
    return er, ei


def settings_of(separate) -> dict:
    """The keyword arguments of ``wiener`` that a config's ``separate`` section sets."""
    return {"window_frames": separate.wiener_window_frames, "scale_divisor": separate.wiener_scale_divisor,
            "load": separate.wiener_load}


def wiener(mix: np.ndarray, mags: np.ndarray, iterations: int, bins: int | None = None,
           stems: list[int] | None = None, frame_major: bool = False, window_frames: int = 0,
           scale_divisor: float = 1.0, load: float = _EPS) -> np.ndarray:
    """mix (C, F, T) complex, mags (S, C, F, T) magnitudes -> estimates (S', C, F, T) complex64.

    ``iterations=0`` is plain ratio masking with the mixture phase. ``stems`` (indices into S,
    default all) are the estimates returned, in that order; every stem still takes part in the
    filter. ``frame_major`` returns them as (S', C, T, F), the inverse STFT's layout. ``bins``
    overrides the block size (frequency bins per block; default: ``block_bins``); the result
    does not depend on it beyond float rounding. ``window_frames``, ``scale_divisor`` and
    ``load``: see the module doc (the defaults are stemsplit's own convention).
    """
    mix = np.asarray(mix, dtype=np.complex64)
    mags = np.asarray(mags, dtype=np.float32)
    c, n_bins, frames = mix.shape
    stems = list(range(mags.shape[0])) if stems is None else list(stems)
    if iterations > 0 and c > 2:
        raise ValueError("the Wiener filter supports mono and stereo only")
    shape = (len(stems), c, frames, n_bins) if frame_major else (len(stems), c, n_bins, frames)
    out = np.empty(shape, np.complex64)
    view = out.swapaxes(-1, -2) if frame_major else out                # (S', C, F, T) either way
    if iterations > 0 and 0 < window_frames < frames:
        for lo in range(0, frames, window_frames):
            hi = min(lo + window_frames, frames)
            view[..., lo:hi] = wiener(mix[..., lo:hi], mags[..., lo:hi], iterations, bins, stems,
                                      scale_divisor=scale_divisor, load=load)
        return out
    abs_mix = np.abs(mix)
    # the mixture's phase, X / |X| (a silent bin has angle 0, as torch.angle gives it), as real and
    # imaginary parts; numpy's complex division by a real computes it as X times the reciprocal
    recip = np.divide(np.float32(1.0), abs_mix, out=np.zeros_like(abs_mix), where=abs_mix > 0)
    silent = abs_mix <= 0
    phr, phi = mix.real * recip, mix.imag * recip
    phr[silent] = 1.0
    if iterations <= 0:
        for k, j in enumerate(stems):
            view[k].real, view[k].imag = mags[j] * phr, mags[j] * phi
        return out
    # one scale for all blocks: keeps powers in float32 range (x / scale: x times 1 / scale, as above)
    scale = np.float32(max(float(abs_mix.max(initial=0.0)) / scale_divisor, 1.0))
    inv_scale = np.float32(1.0) / scale
    step = bins or block_bins(mags.shape[0], c, frames)
    for lo in range(0, n_bins, step):
        hi = min(lo + step, n_bins)
        mr, mi = mix.real[:, lo:hi] * inv_scale, mix.imag[:, lo:hi] * inv_scale     # (C, bins, T)
        er = mags[:, :, lo:hi] * phr[None, :, lo:hi]                                 # (S, C, bins, T)
        er *= inv_scale
        ei = mags[:, :, lo:hi] * phi[None, :, lo:hi]
        ei *= inv_scale
        er, ei = _refine(mr, mi, er, ei, iterations, stems, np.float32(load))
        er *= scale
        ei *= scale
        block = view[:, :, lo:hi]
        block.real, block.imag = er, ei
    return out
