"""Supervised NMF: the multiplicative-update core on torch and numpy, dictionary learning, and
separation with fixed dictionaries."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from stemsplit.config import load_config
from stemsplit.models import build_model, count_parameters
from stemsplit.models.nmf import beta_divergence, fit_activations, initial_activations, update_dictionary

BETAS = (0.0, 0.5, 1.0, 2.0)


def _problem(seed=0, f=40, n=120, k=6):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(f, k, generator=g, dtype=torch.float64) + 0.05
    W = W / W.sum(0)
    V = (W @ torch.rand(k, n, generator=g, dtype=torch.float64)) * 5 + 0.01
    return V, W


@pytest.mark.parametrize("beta", BETAS)
def test_torch_and_numpy_run_the_same_updates(beta):
    V, W = _problem()
    W0 = torch.rand(W.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.1
    results = {}
    for xp, v, w in ((torch, V, W0), (np, V.numpy(), W0.numpy())):
        H = fit_activations(xp, v, w, initial_activations(xp, v, w.shape[1]), 25, beta, sparsity=0.01)
        w2 = update_dictionary(xp, v, w, H, beta)
        results[xp.__name__] = (np.asarray(H), np.asarray(w2), beta_divergence(xp, v, w2 @ H, beta))
    (h_t, w_t, d_t), (h_n, w_n, d_n) = results["torch"], results["numpy"]
    np.testing.assert_allclose(h_t, h_n, rtol=1e-10)
    np.testing.assert_allclose(w_t, w_n, rtol=1e-10)
    assert d_t == pytest.approx(d_n, rel=1e-10)


@pytest.mark.parametrize("beta", BETAS)
def test_activation_updates_never_increase_the_divergence(beta):
    V, W = _problem(seed=2)
    H = initial_activations(torch, V, W.shape[1])
    last = beta_divergence(torch, V, W @ H, beta)
    for _ in range(30):
        H = fit_activations(torch, V, W, H, 1, beta)
        now = beta_divergence(torch, V, W @ H, beta)
        assert now <= last + 1e-12
        last = now
    assert last < 0.5 * beta_divergence(torch, V, W @ initial_activations(torch, V, W.shape[1]), beta)


def test_dictionary_updates_keep_unit_columns_and_fit_better():
    V, W = _problem(seed=3)
    W0 = torch.rand(W.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.1
    W0 = W0 / W0.sum(0)

    def fitted(w):
        return beta_divergence(torch, V, w @ fit_activations(torch, V, w, initial_activations(torch, V, 6), 50), 1.0)

    start, w = fitted(W0), W0
    for _ in range(30):
        w = update_dictionary(torch, V, w, fit_activations(torch, V, w, initial_activations(torch, V, 6), 20))
    assert torch.allclose(w.sum(0), torch.ones(6, dtype=torch.float64))
    assert fitted(w) < 0.5 * start


def test_the_model_gives_the_same_masks_on_either_backend():
    cfg = tiny_config("nmf")
    torch.manual_seed(0)
    on_torch = build_model(cfg).eval()
    on_numpy = build_model(tiny_config("nmf", ["model.backend=numpy"])).eval()
    on_numpy.load_state_dict(on_torch.state_dict())
    mag = torch.rand(1, 2, cfg.n_bins, 30) * 2
    a, b = on_torch(mag), on_numpy(mag)
    assert b.dtype == a.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert torch.allclose(a.sum(1), torch.ones(()), atol=1e-4)  # soft masks share out the mixture


def _two_timbres(bins: int, frames: int, seed: int) -> torch.Tensor:
    """(1, 2, 1, F, T) stems: stem 0 lives on low even bins, stem 1 on high odd bins."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 2, 1, bins, frames)
    out[0, 0, 0, 2:bins // 2:2] = torch.rand(len(range(2, bins // 2, 2)), frames, generator=g) * 4
    out[0, 1, 0, bins // 2 + 1::2] = torch.rand(len(range(bins // 2 + 1, bins, 2)), frames, generator=g) * 4
    return out


def test_fitted_dictionaries_separate_stems_of_different_timbre():
    cfg = load_config(None, ["model.name=nmf", "model.components=4", "model.fit_iterations=10",
                             "model.separate_iterations=60", "stft.n_fft=128", "stft.hop_length=32",
                             "stems=[low, high]", "audio.channels=1"])
    torch.manual_seed(0)
    model = build_model(cfg)
    before = model.dictionaries.clone()
    for step in range(15):
        src = _two_timbres(cfg.n_bins, 50, seed=step)
        model.fit_step(src.sum(1), src)
    assert not torch.equal(model.dictionaries, before) and model.fitted_batches.item() == 15
    test = _two_timbres(cfg.n_bins, 40, seed=99)
    mix = test.sum(1)
    estimates = model.stem_magnitudes(mix, mix)
    error = (estimates - test).pow(2).sum() / test.pow(2).sum()
    assert error < 0.01, error


def test_dictionaries_are_saved_parameters_without_gradients():
    cfg = load_config(None, ["model.name=nmf"])
    model = build_model(cfg)
    assert "dictionaries" in model.state_dict() and "fitted_batches" in model.state_dict()
    assert not model.dictionaries.requires_grad
    assert count_parameters(model) == len(cfg.stems) * cfg.n_bins * cfg.model.params.components
