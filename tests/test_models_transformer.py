"""The transformer family: rotary positions make attention depend on frame distance only."""
from __future__ import annotations

import torch
from conftest import tiny_config

from stemsplit.models import build_model
from stemsplit.models.transformer import apply_rotary, rotary_angles


def test_rotary_scores_depend_only_on_the_distance_between_frames():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g)
    cos, sin = rotary_angles(64, 8, 10000.0, "cpu", torch.float32)

    def score(i, j):
        return (apply_rotary(q, cos[i:i + 1], sin[i:i + 1]) * apply_rotary(k, cos[j:j + 1], sin[j:j + 1])).sum()

    for i, j in ((3, 10), (0, 7), (20, 27)):
        assert torch.allclose(score(i, j), score(i + 30, j + 30), atol=1e-4)
    assert not torch.allclose(score(3, 10), score(3, 11), atol=1e-3)
    # a rotation keeps lengths: positions change directions, never magnitudes
    x = torch.randn(5, 64, 8, generator=g)
    assert torch.allclose(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_a_model_trained_on_short_segments_takes_longer_ones():
    cfg = tiny_config("transformer")
    model = build_model(cfg).eval()
    with torch.no_grad():
        for frames in (3, 400):
            masks = model(torch.rand(1, 2, cfg.n_bins, frames))
            assert masks.shape == (1, len(cfg.stems), 2, cfg.n_bins, frames) and torch.isfinite(masks).all()


def test_every_frame_sees_the_whole_segment():
    """Self-attention is global: a change at the first frame reaches the last one."""
    cfg = tiny_config("transformer")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.rand(1, 2, cfg.n_bins, 50)
    y = x.clone()
    y[..., 0] += 3.0
    with torch.no_grad():
        assert (model(x)[..., -1] - model(y)[..., -1]).abs().max() > 0
