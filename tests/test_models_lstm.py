"""The LSTM family's branch layouts: one shared network, one per stem (Open-Unmix), or one per
stem bridged by averaging (CrossNet-Open-Unmix)."""
from __future__ import annotations

import torch
from conftest import tiny_config

from stemsplit.models import build_model


def _model(branches: str):
    torch.manual_seed(0)
    return build_model(tiny_config("lstm", [f"model.branches={branches}"])).eval()


def _masks_after_changing_the_vocals_branch(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        before = model(x)
        for p in model.encoders[0].parameters():  # the first stem's (vocals') encoder
            p.add_(0.5 * torch.randn_like(p))
        return before, model(x)


def test_every_layout_gives_one_mask_per_stem():
    x = torch.rand(2, 2, 257, 9)
    for branches in ("shared", "per_stem", "bridged"):
        with torch.no_grad():
            masks = _model(branches)(x)
        assert masks.shape == (2, 4, 2, 257, 9)
        assert float(masks.min()) >= 0 and float(masks.max()) <= 1


def test_per_stem_branches_are_independent_and_bridged_ones_are_not():
    x = torch.rand(1, 2, 257, 9)
    before, after = _masks_after_changing_the_vocals_branch(_model("per_stem"), x)
    changed = [not torch.allclose(before[:, s], after[:, s]) for s in range(4)]
    assert changed == [True, False, False, False]
    before, after = _masks_after_changing_the_vocals_branch(_model("bridged"), x)
    assert all(not torch.allclose(before[:, s], after[:, s]) for s in range(4))


def test_per_stem_layouts_have_one_network_per_stem():
    shared = sum(p.numel() for p in _model("shared").parameters())
    per_stem = _model("per_stem")
    assert len(per_stem.encoders) == len(per_stem.lstms) == len(per_stem.decoders) == 4
    assert sum(p.numel() for p in per_stem.parameters()) > shared  # four encoders and LSTMs instead of one
    assert sum(p.numel() for p in _model("bridged").parameters()) == sum(p.numel() for p in per_stem.parameters())
