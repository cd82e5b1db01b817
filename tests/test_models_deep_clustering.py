"""Deep clustering: k-means on the embeddings gives binary masks, and the mask head names the
clusters, so a stem keeps its name whatever order the clusters come in."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import tiny_config

from stemsplit.models import build_model
from stemsplit.models.deep_clustering import kmeans_binary_masks


def _scene(seed=0, stems=3, c=2, f=30, t=25, d=6):
    """Dominant-stem labels (C, F, T), embeddings near one direction per stem, a vague mask
    head (the right stem only slightly ahead) and a magnitude."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(stems, (c, f, t), generator=g)
    directions = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:stems]   # orthonormal, as trained
    emb = F.normalize(directions[labels] + 0.15 * torch.randn(c, f, t, d, generator=g), dim=-1)
    masks = 0.3 + 0.1 * F.one_hot(labels, stems).permute(3, 0, 1, 2).float()   # (S, C, F, T)
    mag = torch.rand(c, f, t, generator=g) + 0.1
    return labels, emb, masks, mag


def test_kmeans_recovers_the_dominant_stems_as_binary_masks():
    labels, emb, masks, mag = _scene()
    binary = kmeans_binary_masks(emb, masks, mag, iterations=10)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(binary.sum(0), torch.ones_like(mag))  # every bin goes to exactly one stem
    assert torch.equal(binary.argmax(0), labels)


def test_stem_names_do_not_depend_on_the_embedding_directions():
    """Two segments whose embeddings put the stems in different directions (as two chunks of a
    song may) give the same masks: the mask head, not the cluster order, names them."""
    labels, emb, masks, mag = _scene(seed=1)
    rotation = torch.linalg.qr(torch.randn(emb.shape[-1], emb.shape[-1], generator=torch.Generator().manual_seed(5)))[0]
    swapped = emb @ rotation  # every direction moved: cluster k is no longer near where it was
    a = kmeans_binary_masks(emb, masks, mag, 10)
    b = kmeans_binary_masks(swapped, masks, mag, 10)
    assert torch.equal(a, b) and torch.equal(a.argmax(0), labels)


def test_a_stem_the_mask_head_calls_silent_gets_no_bins():
    labels, emb, masks, mag = _scene(seed=2, stems=3)
    masks = masks.clone()
    masks[2] = 0.0  # the head hears nothing of stem 2, yet k-means still forms three clusters
    binary = kmeans_binary_masks(emb, masks, mag, 10)
    assert binary[2].sum() == 0
    assert torch.equal(binary.sum(0), torch.ones_like(mag))
    assert torch.equal(binary[:2].argmax(0)[labels < 2], labels[labels < 2])


def test_separation_gives_binary_masks_of_the_mixture_or_the_soft_head():
    cfg = tiny_config("deep_clustering")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    mag = torch.rand(1, 2, cfg.n_bins, 12) + 0.1
    with torch.no_grad():
        stems = model.stem_magnitudes(mag, mag)
        ratio = stems / mag.unsqueeze(1)
        assert set(ratio.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(stems.sum(1), mag)  # binary masks share out every bin once
        soft = build_model(tiny_config("deep_clustering", ["model.separation=mask_head"])).eval()
        soft.load_state_dict(model.state_dict())
        torch.testing.assert_close(soft.stem_magnitudes(mag, mag), model(mag)[1] * mag.unsqueeze(1))


def test_more_clusters_than_stems_are_all_named():
    """With clusters > stems each stem may span several clusters; every bin still gets one stem."""
    labels, emb, masks, mag = _scene(seed=3)
    binary = kmeans_binary_masks(emb, masks, mag, iterations=10, clusters=7)
    assert torch.equal(binary.sum(0), torch.ones_like(mag))
    assert (binary.argmax(0) == labels).float().mean() > 0.99
