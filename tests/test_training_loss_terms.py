"""The extra loss terms: known values on small inputs, and how SeparationLoss adds them."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config

from stemsplit.config import ConfigError
from stemsplit.training.loss_terms import combination_sums, mixture_consistency, stem_combinations, weighted_sdr
from stemsplit.training.losses import SeparationLoss


def _sources(seed=0, stems=4, length=4096):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(2, stems, 2, length, generator=g)


def test_weighted_sdr_is_minus_one_for_a_perfect_estimate():
    src = _sources()
    assert weighted_sdr(src, src, src.sum(1)).item() == pytest.approx(-1.0, abs=1e-6)


def test_weighted_sdr_known_value_for_a_scaled_estimate():
    """ŷ = 0.5 y: cos(y, ŷ) = 1, and z = x − y, ẑ = z + 0.5 y gives a cosine computable by hand."""
    y = torch.tensor([[[[1.0, 0.0, 0.0]]]])       # (B=1, S=1, C=1, L=3)
    x = torch.tensor([[[1.0, 1.0, 0.0]]])          # mixture (B, C, L): z = (0, 1, 0)
    est = 0.5 * y
    # alpha = |y|² / (|y|² + |z|²) = 1/2; cos(z, ẑ) with ẑ = x − ŷ = (0.5, 1, 0): 1 / sqrt(1.25)
    expected = -(0.5 * 1.0 + 0.5 / math.sqrt(1.25))
    assert weighted_sdr(est, y, x).item() == pytest.approx(expected, rel=1e-6)


def test_stem_combinations_cover_every_proper_subset_singles_first():
    combos = stem_combinations(4)
    assert len(combos) == 14 and combos[:4] == [(0,), (1,), (2,), (3,)]
    x = torch.arange(4.0).reshape(1, 4)
    sums = combination_sums(x, 4)[0]
    assert sums[:4].tolist() == [0, 1, 2, 3]
    assert sums.tolist() == [float(sum(c)) for c in combos]


def test_mixture_consistency_known_values():
    mix = torch.rand(1, 2, 5, 7) + 0.1
    quarter = mix.unsqueeze(1).expand(1, 4, 2, 5, 7) * 0.25
    assert mixture_consistency(quarter, mix).item() == pytest.approx(0.0, abs=1e-6)
    half = mix.unsqueeze(1).expand(1, 4, 2, 5, 7) * 0.5          # twice the mixture: |2X − X| = |X|
    assert mixture_consistency(half, mix).item() == pytest.approx(1.0, rel=1e-5)


class _Masks(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, mag):
        return self.out


def _masks(cfg, value, frames=4096):
    n_bins = cfg.stft.n_fft // 2 + 1
    return torch.full((2, 4, 2, n_bins, frames // cfg.stft.hop_length + 1), value)


def test_separation_loss_adds_each_term_by_its_weight():
    base = ["train.loss=l1"]
    src = _sources()
    mix = src.sum(1)
    masks = _masks(tiny_config("unet", base), 0.5)
    plain = SeparationLoss(tiny_config("unet", base))(_Masks(masks), mix, src).loss
    cons = SeparationLoss(tiny_config("unet", base + ["train.mixture_consistency_weight=2.0"]))
    assert (cons(_Masks(masks), mix, src).loss - plain).item() == pytest.approx(2.0, rel=1e-4)
    wsdr = SeparationLoss(tiny_config("unet", base + ["train.wsdr_weight=1.0"]))
    added = (wsdr(_Masks(masks), mix, src).loss - plain).item()
    estimate = wsdr.stft.inverse(0.5 * wsdr.stft(mix).unsqueeze(1).expand(2, 4, 2, -1, -1), length=4096)
    assert added == pytest.approx(weighted_sdr(estimate, src, mix).item(), rel=1e-4)


def test_combination_loss_scores_sums_of_stems():
    """With masks that give every stem the whole mixture, a single stem's error is |X − S_i| but
    a pair's estimate is 2|X|: the combination loss must be larger than the plain one."""
    cfg = tiny_config("lstm", ["train.loss=mse"])
    comb = SeparationLoss(tiny_config("lstm", ["train.loss=mse", "train.combination_loss=true"]))
    src = _sources()
    mix = src.sum(1)
    ones = _masks(cfg, 1.0)
    plain = SeparationLoss(cfg)(_Masks(ones), mix, src).loss.item()
    combined = comb(_Masks(ones), mix, src).loss.item()
    spec = comb.stft(src)
    est = ones * comb.stft(mix).abs().unsqueeze(1)
    expected = torch.nn.functional.mse_loss(combination_sums(est, 4), combination_sums(spec, 4).abs()).item()
    assert combined == pytest.approx(expected, rel=1e-5) and combined > plain
    with pytest.raises(ConfigError, match="train.combination_loss"):
        SeparationLoss(tiny_config("mask_cnn", ["train.loss=bce", "train.combination_loss=true"]))


def test_negative_weights_are_refused():
    from stemsplit.training.checks import check_train_config

    with pytest.raises(ConfigError, match="train.wsdr_weight"):
        check_train_config(tiny_config("lstm", ["train.wsdr_weight=-1"]))
    with pytest.raises(ConfigError, match="data.weights"):
        check_train_config(tiny_config("lstm", ["data.weights=[1, 2]"]))
