"""research/prune_band_split.py: the cut network keeps the chosen units' weights, and keeping every
unit gives back the same network."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import prune_band_split as prune  # noqa: E402
from conftest import write_tiny_checkpoint  # noqa: E402

from stemsplit.checkpoint import load_checkpoint  # noqa: E402


def test_keeping_every_unit_gives_the_same_network_and_fewer_units_the_chosen_weights(tmp_path):
    src = write_tiny_checkpoint(tmp_path / "bs.ckpt", "band_split")  # hidden_size 8
    x = torch.rand(1, 2, 257, 12)
    same = tmp_path / "same.ckpt"
    prune.prune(src, same, hidden=8)
    a, b = load_checkpoint(src).model.eval(), load_checkpoint(same).model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(x))

    cut = tmp_path / "cut.ckpt"
    prune.prune(src, cut, hidden=5)
    small = load_checkpoint(cut)
    assert small.model.params.hidden_size == 5
    sd, big = small.model.state_dict(), a.state_dict()
    keep = prune.kept_units({k: v.float() for k, v in big.items()}, "blocks.0.time", "", 8, 5, 0)
    assert len(keep) == 5 and torch.all(keep[1:] > keep[:-1])
    rows = torch.cat([g * 8 + keep for g in range(4)])
    hh = "blocks.0.time.rnn.weight_hh_l0"
    torch.testing.assert_close(sd[hh], big[hh][rows][:, keep])
    torch.testing.assert_close(sd["blocks.0.time.proj.weight"][:, :5], big["blocks.0.time.proj.weight"][:, keep])
    with torch.inference_mode():
        assert small.model.eval()(x).shape == a(x).shape
