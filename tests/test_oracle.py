"""Oracle masks and the mixture floor on generated signals."""
import numpy as np
import pytest

from stemsplit.config import STFTConfig
from stemsplit.metrics import bss_eval_frames, global_sdr, global_sdr_stems
from stemsplit.separation.oracle import (
    MIXTURE,
    ORACLE_IBM,
    ORACLE_IRM_MAG,
    ORACLE_IRM_POWER,
    ORACLE_METHODS,
    oracle_estimates,
)

SR = 8000
STFT = STFTConfig(n_fft=512, hop_length=128)


def dense_mixture(seed, seconds=2.0, stems=3, channels=1):
    """Typical music-like overlap: coloured noises whose spectra and level changes overlap."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = []
    for _ in range(stems):
        kernel = np.hanning(rng.integers(3, 24))
        x = np.convolve(rng.standard_normal(t.size), kernel / kernel.sum(), "same")
        env = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 6))
        out.append(x * env * rng.uniform(0.5, 1.5))
    return np.repeat(np.stack(out)[:, None, :], channels, axis=1).astype(np.float32)


def band_sources(seconds=1.5):
    """Two stereo tones far apart in frequency: masks can separate them almost perfectly."""
    t = np.arange(int(seconds * SR)) / SR
    low = np.stack([np.sin(2 * np.pi * 110 * t), 0.5 * np.sin(2 * np.pi * 110 * t + 1)])
    high = np.stack([0.3 * np.sin(2 * np.pi * 2500 * t), 0.6 * np.sin(2 * np.pi * 2500 * t + 2)])
    return np.stack([low, high]).astype(np.float32)


def test_mixture_is_every_stems_estimate_and_scores_the_floor():
    src = dense_mixture(0, stems=3, channels=2)
    mix = src.sum(0)
    est = oracle_estimates(MIXTURE, mix, src, STFT)
    assert est.shape == src.shape and est.dtype == np.float32
    assert np.array_equal(est[1], mix)
    for j in range(3):  # SDR of the mixture = source power over the power of the other sources
        others = mix - src[j]
        floor = 10 * np.log10(np.sum(src[j].astype(np.float64) ** 2) / np.sum(others.astype(np.float64) ** 2))
        assert global_sdr(src[j], est[j]) == pytest.approx(floor, abs=1e-3)
    masked = [global_sdr_stems(src, oracle_estimates(m, mix, src, STFT)) for m in ORACLE_METHODS[:3]]
    assert all(np.all(m > global_sdr_stems(src, est) + 3) for m in masked)


@pytest.mark.parametrize("method", [ORACLE_IRM_MAG, ORACLE_IRM_POWER])
def test_ratio_masks_split_the_given_mixture_exactly(method):
    src = dense_mixture(1, stems=3, channels=2)
    rng = np.random.default_rng(5)
    mix = (src.sum(0) + 0.01 * rng.standard_normal(src.shape[1:])).astype(np.float32)  # not the plain sum
    est = oracle_estimates(method, mix, src, STFT)
    np.testing.assert_allclose(est.sum(0), mix, atol=1e-4)


def test_binary_mask_of_two_sources_assigns_every_bin_once():
    src = dense_mixture(2, stems=2, channels=1)
    mix = src.sum(0)
    est = oracle_estimates(ORACLE_IBM, mix, src, STFT)
    np.testing.assert_allclose(est.sum(0), mix, atol=1e-4)
    assert not np.allclose(est[0], oracle_estimates(ORACLE_IRM_MAG, mix, src, STFT)[0], atol=1e-3)


def test_disjoint_sources_are_separated_almost_perfectly():
    src = band_sources()
    mix = src.sum(0)
    for method in (ORACLE_IBM, ORACLE_IRM_MAG, ORACLE_IRM_POWER):
        assert np.all(global_sdr_stems(src, oracle_estimates(method, mix, src, STFT)) > 25), method


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ideal_ratio_mask_beats_binary_mask_on_typical_mixtures(seed):
    src = dense_mixture(seed, stems=3, channels=1)
    mix = src.sum(0)
    ibm = global_sdr_stems(src, oracle_estimates(ORACLE_IBM, mix, src, STFT))
    irm = global_sdr_stems(src, oracle_estimates(ORACLE_IRM_POWER, mix, src, STFT))
    assert np.all(irm > ibm + 0.3), (irm, ibm)
    if seed == 0:  # and with BSS Eval, as SiSEC scores it
        ibm_sdr = np.median(bss_eval_frames(src, oracle_estimates(ORACLE_IBM, mix, src, STFT), SR)["SDR"])
        irm_sdr = np.median(bss_eval_frames(src, oracle_estimates(ORACLE_IRM_POWER, mix, src, STFT), SR)["SDR"])
        assert irm_sdr > ibm_sdr


def test_masks_follow_the_stft_settings_and_bad_input_is_refused():
    src = dense_mixture(3, stems=2, channels=1)
    mix = src.sum(0)
    small = oracle_estimates(ORACLE_IBM, mix, src, STFTConfig(n_fft=128, hop_length=32))
    large = oracle_estimates(ORACLE_IBM, mix, src, STFTConfig(n_fft=1024, hop_length=256))
    assert not np.allclose(small, large, atol=1e-3)
    with pytest.raises(ValueError, match="unknown oracle"):
        oracle_estimates("oracle-magic", mix, src, STFT)
    with pytest.raises(ValueError, match="do not match"):
        oracle_estimates(ORACLE_IBM, mix[:, :-5], src, STFT)
