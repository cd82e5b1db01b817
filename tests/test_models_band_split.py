"""The band_split family: its bands tile the spectrum below max_bin, its masks cover every bin,
it learns, and it trains and separates through the pipelines. ONNX export (torch vs ONNX
Runtime within 1e-4) is covered with every family in tests/test_onnx_export.py, through its
entry in conftest.TINY."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CONFIGS, TINY, tiny_config, tone_mix
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import load_checkpoint
from stemsplit.config import ConfigError, load_config
from stemsplit.models import build_model
from stemsplit.models.band_split import band_edges
from stemsplit.pipelines.train import TrainOptions, run_train
from stemsplit.separation.torch_runner import torch_engine
from stemsplit.settings import EngineSettings


@pytest.mark.parametrize("n_bins,max_bin,num_bands", [(2049, 1487, 24), (257, 64, 8), (257, 257, 40),
                                                      (129, 10, 10), (2049, 1487, 1)])
def test_bands_cover_every_bin_below_max_bin_exactly_once(n_bins, max_bin, num_bands):
    edges = band_edges(n_bins, max_bin, num_bands)
    assert len(edges) == num_bands + 1 and edges[0] == 0 and edges[-1] == max_bin
    covered = [b for lo, hi in zip(edges[:-1], edges[1:]) for b in range(lo, hi)]
    assert covered == list(range(max_bin))  # each bin once, in order, no gap, no overlap
    widths = [hi - lo for lo, hi in zip(edges[:-1], edges[1:])]
    assert min(widths) >= 1 and widths == sorted(widths)  # never narrower above than below


def test_default_bands_are_narrow_at_low_frequencies():
    model = build_model(load_config(CONFIGS / "band_split.yaml"))
    widths = [hi - lo for lo, hi in zip(model.edges[:-1], model.edges[1:])]
    assert len(widths) == 24 and widths[0] <= 10 and widths[-1] >= 150  # ~100 Hz at the bottom, ~2 kHz at the top


def test_masks_have_the_contract_shape_and_range():
    cfg = tiny_config("band_split")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    s, c, f = len(cfg.stems), cfg.audio.channels, cfg.n_bins
    for frames in (1, 9, 50):
        x = torch.rand(3, c, f, frames) * 4
        with torch.no_grad():
            masks = model(x)
        assert masks.shape == (3, s, c, f, frames)
        assert masks.min() >= 0 and masks.max() <= 1 and torch.isfinite(masks).all()
        # bins above max_bin share one mask per stem, channel and frame: the top band's extra value
        above = masks[..., model.max_bin:, :]
        assert torch.equal(above, above[..., :1, :].expand_as(above))


def test_the_bins_above_max_bin_do_not_reach_the_network():
    cfg = tiny_config("band_split")
    model = build_model(cfg).eval()
    x = torch.rand(1, 2, cfg.n_bins, 12)
    y = x.clone()
    y[:, :, model.max_bin:] *= 5
    with torch.no_grad():
        assert torch.equal(model(x), model(y))


def test_recurrent_over_time_so_context_is_unbounded():
    cfg = tiny_config("band_split")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert model.context_frames() is None
    x = torch.rand(1, 2, cfg.n_bins, 40)
    y = x.clone()
    y[..., 0] += 3.0
    with torch.no_grad():
        assert (model(x)[..., -1] - model(y)[..., -1]).abs().max() > 0


def test_a_few_gradient_steps_reduce_the_loss():
    """A generated problem: the first stem is the low half of the spectrum, the rest share the top."""
    cfg = tiny_config("band_split", ["model.dropout=0.0"])
    torch.manual_seed(0)
    model = build_model(cfg)
    mix = torch.rand(4, 2, cfg.n_bins, 30) * 2
    low = (torch.arange(cfg.n_bins) < 32).float()[:, None]
    target = torch.stack([low.expand_as(mix[0])] + [0.5 * (1 - low).expand_as(mix[0])] * 3)  # (S, C, F, T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = ((model(mix) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("override,match", [
    ("model.num_bands=65", "model.num_bands: 65 must be in"),
    ("model.max_bin=3000", "model.max_bin: 3000 must be in"),
    ("model.num_blocks=0", "model.num_blocks: must be >= 1"),
    ("model.feature_size=0", "model.feature_size: must be >= 1"),
])
def test_settings_it_cannot_take_are_config_errors(override, match):
    sets = [override] if "max_bin" in override else ["model.max_bin=64", override]
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIGS / "band_split.yaml", sets)


def test_trains_through_the_train_pipeline_and_separates(tmp_path):
    corpus = make_corpus(tmp_path / "ds", n_train=2, n_valid=1, seconds=1.0)
    run = tmp_path / "run"
    sets = TINY["band_split"] + FAST + ["train.max_steps=2", "train.val_excerpts=1"]
    result = run_train(TrainOptions(config=CONFIGS / "band_split.yaml", data=corpus, out=run, device="cpu",
                                    overrides=sets))
    assert result.step == 2
    loaded = load_checkpoint(run / "best.ckpt")
    assert loaded.model.name == "band_split" and loaded.model.edges == band_edges(257, 64, 8)
    mix = tone_mix(1.7, seed=2)
    stems = torch_engine(loaded, EngineSettings(segment_seconds=1.0)).separate(mix)
    assert stems.shape == (4, *mix.shape) and np.isfinite(stems).all() and np.abs(stems).max() > 1e-3
