"""The numpy STFT pair gives torch.stft / torch.istft's numbers (as stemsplit.audio.stft calls them)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stemsplit.audio.stft import STFT
from stemsplit.audio.stft_numpy import NumpySTFT, hann
from stemsplit.config import STFTConfig

SIZES = [(4096, 1024), (512, 128), (400, 150)]  # the last: a hop that does not divide n_fft


def _signal(channels: int, length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, length)).astype(np.float32)


def test_window_is_torchs_periodic_hann():
    np.testing.assert_allclose(hann(400), torch.hann_window(400, periodic=True).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n_fft,hop", SIZES)
@pytest.mark.parametrize("length", [50_000, 3000, 100, 1])  # 100 and 1: shorter than n_fft/2 -> constant pad
def test_forward_matches_torch_stft(n_fft, hop, length):
    cfg = STFTConfig(n_fft=n_fft, hop_length=hop)
    x = _signal(2, length, seed=length)
    want = STFT(cfg)(torch.from_numpy(x)).numpy()
    got = NumpySTFT(cfg)(x)
    assert got.shape == want.shape == (2, n_fft // 2 + 1, length // hop + 1)
    assert got.dtype == np.complex64 and got.flags.c_contiguous
    assert np.abs(got - want).max() <= 1e-5 * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("n_fft,hop", SIZES)
@pytest.mark.parametrize("length", [50_000, 3001, 100])
def test_inverse_matches_torch_istft_and_reconstructs(n_fft, hop, length):
    cfg = STFTConfig(n_fft=n_fft, hop_length=hop)
    x = _signal(2, length, seed=1)
    stft = NumpySTFT(cfg)
    spec = stft(x)
    # a spectrogram that is not an STFT of anything (as the masked stems are): istft must still agree
    spec = spec * np.random.default_rng(2).uniform(0, 1, spec.shape).astype(np.float32)
    want = STFT(cfg).inverse(torch.from_numpy(spec), length).numpy()
    got = stft.inverse(spec, length)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-5 * max(np.abs(want).max(), 1.0)
    np.testing.assert_allclose(stft.inverse(stft(x), length), x, rtol=0, atol=1e-5)  # perfect reconstruction


def test_leading_axes_and_lengths_past_the_last_frame():
    cfg = STFTConfig(n_fft=512, hop_length=128)
    stft = NumpySTFT(cfg)
    x = _signal(6, 2000).reshape(3, 2, 2000)
    spec = stft(x)
    assert spec.shape == (3, 2, 257, 2000 // 128 + 1)
    np.testing.assert_allclose(stft.inverse(spec, 2000), x, rtol=0, atol=1e-5)
    # asking for more samples than the frames cover: zeros after them, as torch.istft gives
    longer = stft.inverse(spec, 2500)
    with pytest.warns(UserWarning, match="shorter than the length"):
        want = STFT(cfg).inverse(torch.from_numpy(spec), 2500).numpy()
    # up to where the last frames' tiny envelope amplifies rounding in both
    np.testing.assert_allclose(longer[..., :2100], want[..., :2100], rtol=0, atol=1e-5)
    assert np.all(longer[..., 2000 + 256:] == 0) and np.all(want[..., 2000 + 256:] == 0)


def test_frame_major_pair_is_the_transposed_pair_and_writes_into_out():
    cfg = STFTConfig(n_fft=256, hop_length=64)
    stft = NumpySTFT(cfg)
    x = np.random.default_rng(3).standard_normal((2, 3000)).astype(np.float32)
    spec = stft(x)
    frames = stft.frames_forward(x)
    np.testing.assert_array_equal(frames, spec.swapaxes(-1, -2))
    out = np.full((2, 3000), 7.0, np.float32)
    got = stft.frames_inverse(frames, 3000, out=out)
    assert got is out
    np.testing.assert_array_equal(out, stft.inverse(spec, 3000))
    np.testing.assert_allclose(out, x, atol=1e-5)
    with pytest.raises(ValueError, match="C-contiguous"):
        stft.frames_inverse(frames, 3000, out=np.zeros((3000, 2), np.float32).T)
