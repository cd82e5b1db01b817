"""Oracle estimates: the best a time-frequency mask can do, and the floor, from the true stems.

Masks are computed per channel on the model's STFT grid (``stemsplit.audio.stft.STFT``) and
applied to the STFT of the real mixture, as in sigsep-mus-oracle:

- ``oracle-ibm``: ideal binary mask, 1 where a stem holds at least half of the summed
  magnitudes ``|S_j| / sum_k |S_k| >= 0.5`` (sigsep's IBM, alpha 1, theta 0.5).
- ``oracle-irm-mag``: ideal ratio mask on magnitudes ``|S_j| / sum_k |S_k|``.
- ``oracle-irm-power``: ideal ratio mask on power ``|S_j|^2 / sum_k |S_k|^2`` (a Wiener
  filter with the true spectrograms).
- ``mixture``: the mixture itself as every stem's estimate: the floor any method must beat.

Memory stays at about three spectrograms whatever the number of stems: the mask's
denominator is accumulated stem by stem, then each stem's STFT is recomputed for its mask.
"""
from __future__ import annotations

import numpy as np
import torch

from stemsplit.audio.stft import STFT
from stemsplit.config import STFTConfig

ORACLE_IBM = "oracle-ibm"
ORACLE_IRM_MAG = "oracle-irm-mag"
ORACLE_IRM_POWER = "oracle-irm-power"
MIXTURE = "mixture"
ORACLE_METHODS = (ORACLE_IBM, ORACLE_IRM_MAG, ORACLE_IRM_POWER, MIXTURE)

_EPS = 1e-10  # in |S|^alpha units: decides only bins where every stem is silent
_IBM_THETA = 0.5
_ALPHA = {ORACLE_IBM: 1.0, ORACLE_IRM_MAG: 1.0, ORACLE_IRM_POWER: 2.0}


def oracle_estimates(method: str, mixture: np.ndarray, sources: np.ndarray,
                     stft: STFTConfig) -> np.ndarray:
    """One oracle's estimates.

    mixture: (channels, time) float; sources: (stems, channels, time) float, the true stems.
    Returns (stems, channels, time) float32.
    """
    if method not in ORACLE_METHODS:
        raise ValueError(f"unknown oracle {method!r}; choose one of: {', '.join(ORACLE_METHODS)}")
    if sources.shape[1:] != mixture.shape:
        raise ValueError(f"oracle: sources {sources.shape} do not match the mixture {mixture.shape}")
    if method == MIXTURE:
        return np.repeat(np.asarray(mixture, np.float32)[None], sources.shape[0], axis=0)
    return _masked(method, mixture, sources, STFT(stft))


def _magnitude_power(transform: STFT, wav: np.ndarray, alpha: float) -> torch.Tensor:
    """(channels, time) -> |STFT|^alpha (channels, freq, frames) float64."""
    mag = transform(torch.from_numpy(np.asarray(wav, np.float64))).abs()
    return mag if alpha == 1.0 else mag ** alpha


def _masked(method: str, mixture: np.ndarray, sources: np.ndarray, transform: STFT) -> np.ndarray:
    alpha = _ALPHA[method]
    length = mixture.shape[-1]
    with torch.inference_mode():
        mix_spec = transform(torch.from_numpy(np.asarray(mixture, np.float64)))
        total = torch.full(mix_spec.shape, _EPS, dtype=torch.float64)
        for source in sources:
            total += _magnitude_power(transform, source, alpha)
        out = np.empty(sources.shape, np.float32)
        for j, source in enumerate(sources):
            ratio = _magnitude_power(transform, source, alpha) / total
            mask = (ratio >= _IBM_THETA).to(torch.float64) if method == ORACLE_IBM else ratio
            out[j] = transform.inverse(mix_spec * mask, length).numpy()
    return out
