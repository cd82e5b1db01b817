"""The multichannel Wiener post-filter, block by block over frequency, against a plain reference."""
from __future__ import annotations

import numpy as np
import pytest

from stemsplit.separation import wiener as wiener_mod
from stemsplit.separation.wiener import block_bins, wiener


def _reference(mix: np.ndarray, mags: np.ndarray, iterations: int) -> np.ndarray:
    """The EM post-filter written out plainly in complex128 over the whole spectrogram:
    v_j = mean_c |y_j|^2, R_j(f) = sum_t y_j y_j^H / sum_t v_j, y_j = v_j R_j (sum_k v_k R_k)^-1 x."""
    mix, mags = mix.astype(np.complex128), mags.astype(np.float64)
    scale = max(np.abs(mix).max(), 1.0)
    mix, mags = mix / scale, mags / scale
    y = mags * np.exp(1j * np.angle(mix))[None]                              # (S, C, F, T)
    c = mix.shape[0]
    for _ in range(iterations):
        v = (np.abs(y) ** 2).mean(1)                                         # (S, F, T)
        r = np.einsum("saft,sbft->sfab", y, y.conj()) / (v.sum(-1)[..., None, None] + 1e-10)  # (S, F, C, C)
        cov = np.einsum("sft,sfab->ftab", v, r) + 1e-10 * np.eye(c)
        inv_x = np.linalg.solve(cov, mix.transpose(1, 2, 0)[..., None])[..., 0]  # (F, T, C)
        y = np.einsum("sft,sfab,ftb->saft", v, r, inv_x)
    return y * scale


def _problem(seed: int, stems: int, channels: int, bins: int = 37, frames: int = 29):
    g = np.random.default_rng(seed)
    mix = (g.standard_normal((channels, bins, frames)) + 1j * g.standard_normal((channels, bins, frames))) * 3
    share = g.uniform(size=(stems, channels, bins, frames)) ** 2
    mags = share / share.sum(0, keepdims=True) * np.abs(mix)[None]
    return mix.astype(np.complex64), mags.astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations", [0, 1, 3])
@pytest.mark.parametrize("bins", [None, 1, 5, 36, 1000])
def test_blocks_give_the_reference_result(channels, iterations, bins):
    mix, mags = _problem(seed=channels * 10 + iterations, stems=4, channels=channels)
    want = _reference(mix, mags, iterations)
    got = wiener(mix, mags, iterations, bins=bins)
    assert got.shape == want.shape and got.dtype == np.complex64
    err = np.abs(got.astype(np.complex128) - want).max() / np.abs(want).max()
    assert err < 2e-5, err


def test_block_size_does_not_change_the_result_beyond_rounding():
    mix, mags = _problem(seed=7, stems=3, channels=2, bins=65, frames=50)
    whole = wiener(mix, mags, 2, bins=65)
    for bins in (1, 8, 64):
        np.testing.assert_allclose(wiener(mix, mags, 2, bins=bins), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_chosen_stems_and_frame_major_layout_are_the_same_numbers(channels, iterations):
    """``stems`` returns those stems' estimates of the full filter (every stem still shapes the
    mixture covariance), and ``frame_major`` the same values as (S', C, T, F)."""
    mix, mags = _problem(seed=5 + channels, stems=4, channels=channels)
    full = wiener(mix, mags, iterations)
    some = wiener(mix, mags, iterations, stems=[2, 0])
    np.testing.assert_array_equal(some, full[[2, 0]])
    frame_major = wiener(mix, mags, iterations, stems=[1], frame_major=True)
    assert frame_major.shape == (1, channels, mix.shape[2], mix.shape[1])
    np.testing.assert_array_equal(frame_major, full[[1]].swapaxes(-1, -2))
    if iterations:  # the other stems matter: dropping one from the input changes the result
        assert not np.allclose(wiener(mix, mags[:3], iterations, stems=[2, 0]), some, atol=1e-4)


def test_memory_is_bounded_by_blocks(monkeypatch):
    """The EM step only ever sees blocks whose (S, C, C, bins, T) temporary fits the budget,
    and together the blocks cover every bin once."""
    seen = []
    real = wiener_mod._refine
    monkeypatch.setattr(wiener_mod, "_refine", lambda mr, mi, er, ei, it, stems, *rest:
                        seen.append(tuple(er.shape)) or real(mr, mi, er, ei, it, stems, *rest))
    monkeypatch.setattr(wiener_mod, "_BLOCK_BYTES", 4 * 2 * 2 * 29 * 8 * 5)  # room for 5 bins of 4 stems
    mix, mags = _problem(seed=1, stems=4, channels=2)
    wiener(mix, mags, 2)
    assert [s[2] for s in seen] == [5] * 7 + [2]  # 37 bins
    assert all(s[0] * s[1] ** 2 * s[2] * s[3] * 8 <= wiener_mod._BLOCK_BYTES for s in seen)
    # more stems or frames: fewer bins per block, so the temporary stays at the budget
    assert block_bins(8, 2, 29) == 2 and block_bins(4, 2, 58) == 2 and block_bins(4, 2, 10 ** 9) == 1
    monkeypatch.setattr(wiener_mod, "_BLOCK_BYTES", 16 << 20)
    # a 10-s segment at 44.1 kHz, hop 1024, 4 stereo stems: 2049 bins in blocks of a few hundred
    assert 100 < block_bins(4, 2, 431) < 2049


def test_working_memory_beyond_the_output_stays_small(monkeypatch):
    """numpy's allocations are visible to tracemalloc: with blocks, the filter's peak is under two
    copies of its (S, C, F, T) output, where one block of all the bins needs several."""
    import tracemalloc

    monkeypatch.setattr(wiener_mod, "_BLOCK_BYTES", 1 << 20)
    mix, mags = _problem(seed=3, stems=4, channels=2, bins=513, frames=200)
    out_bytes = mags.size * 8  # complex64

    def peak(bins):
        tracemalloc.start()
        try:
            wiener(mix, mags, 2, bins=bins)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    blocked, whole = peak(None), peak(513)
    assert blocked < 2 * out_bytes, (blocked, out_bytes)
    assert blocked < whole / 2, (blocked, whole)
