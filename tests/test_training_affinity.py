"""The affinity loss: its low-rank form equals the N x N definition, and training lowers it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from test_training_corpus import FAST, make_corpus

from stemsplit.config import ConfigError
from stemsplit.models import build_model
from stemsplit.training.affinity import affinity_loss, dominant_stem_labels
from stemsplit.training.losses import SeparationLoss, TrainForward, resolve_loss


def _brute_force(v, y, w):
    """The definition: sum_ij w_i w_j (v_i.v_j - y_i.y_j)^2 / (sum w)^2, with the N x N matrices."""
    out = []
    for vi, yi, wi in zip(v, y, w):
        diff = vi @ vi.T - yi @ yi.T
        out.append((diff.pow(2) * wi[:, None] * wi[None]).sum() / wi.sum() ** 2)
    return torch.stack(out).mean()


def test_low_rank_form_equals_the_full_affinity_matrices():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(3, 70, 5, generator=g, dtype=torch.float64), dim=-1)
    y = F.one_hot(torch.randint(4, (3, 70), generator=g), 4).double()
    w = torch.rand(3, 70, generator=g, dtype=torch.float64)
    torch.testing.assert_close(affinity_loss(v, y, w), _brute_force(v, y, w))


def test_the_loss_is_zero_for_ideal_embeddings_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    y = F.one_hot(torch.randint(3, (2, 50), generator=g), 3).float()
    w = torch.rand(2, 50, generator=g)
    ideal = y @ torch.linalg.qr(torch.randn(3, 3, generator=g))[0]  # orthonormal stem directions
    assert affinity_loss(ideal, y, w).item() == pytest.approx(0.0, abs=1e-6)
    assert affinity_loss(F.normalize(torch.randn(2, 50, 3, generator=g), dim=-1), y, w).item() > 0.1
    # silent bins (weight 0) do not count
    w0 = w.clone()
    w0[:, :10] = 0
    wrong = ideal.clone()
    wrong[:, :10] = -wrong[:, :10]
    assert affinity_loss(wrong, y, w0).item() == pytest.approx(0.0, abs=1e-6)


def test_dominant_stem_labels_are_one_hot_argmax():
    src = torch.tensor([1.0, 3.0, 2.0]).reshape(1, 3, 1, 1, 1).repeat(1, 1, 2, 4, 5)
    labels = dominant_stem_labels(src)
    assert labels.shape == (1, 2, 4, 5, 3) and torch.equal(labels.argmax(-1), torch.ones(1, 2, 4, 5).long())


def test_embedding_models_and_the_affinity_loss_go_together():
    assert resolve_loss(tiny_config("deep_clustering", ["train.loss=auto"])) == "affinity"
    with pytest.raises(ConfigError, match="'deep_clustering' trains with affinity"):
        resolve_loss(tiny_config("deep_clustering", ["train.loss=mse"]))
    with pytest.raises(ConfigError, match="'lstm' trains with bce, mse, l1 or mrstft"):
        resolve_loss(tiny_config("lstm", ["train.loss=affinity"]))


def test_training_on_one_batch_lowers_the_affinity_loss(tmp_path):
    from stemsplit.data.cache import PreparedDataset
    from stemsplit.data.dataset import ExcerptDataset

    cfg = tiny_config("deep_clustering", FAST + ["model.dropout=0.0"])
    ds = PreparedDataset(make_corpus(tmp_path / "ds", n_train=2, n_valid=1, seconds=1.0))
    excerpts = ExcerptDataset([ds], "train", cfg.stems, 11025, 4, None, seed=0)
    mixture = torch.stack([excerpts[i][0] for i in range(4)])
    sources = torch.stack([excerpts[i][1] for i in range(4)])
    torch.manual_seed(0)
    model = build_model(cfg)
    loss_fn = SeparationLoss(cfg)
    net = TrainForward(model, False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        out = loss_fn(net, mixture, sources)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
