"""The five families beyond the design card (crnn, transformer, deep_clustering, waveform_fnn,
nmf) at tiny sizes: output shapes, save/load, one training step, and a few training steps
followed by a separation, all on generated audio through the same train and separate code as
the card's models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CONFIGS, TINY, tiny_config, tone_mix
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import load_checkpoint, save_checkpoint
from stemsplit.config import ConfigError, load_config
from stemsplit.models import build_model, model_class
from stemsplit.pipelines.train import TrainOptions, run_train
from stemsplit.separation.torch_runner import torch_engine
from stemsplit.settings import EngineSettings
from stemsplit.training.losses import SeparationLoss, TrainForward

FAMILIES = ("crnn", "transformer", "deep_clustering", "waveform_fnn", "nmf")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("families") / "ds", n_train=3, n_valid=1, seconds=1.0)


def _input(model, cfg, frames: int, batch: int = 2) -> torch.Tensor:
    """A model input of ``frames`` STFT frames: magnitudes, or that many hops of samples."""
    if model.spectral:
        return torch.rand(batch, cfg.audio.channels, cfg.n_bins, frames) * 3
    return torch.randn(batch, cfg.audio.channels, frames * cfg.stft.hop_length + 17) * 0.1


def _stems_of(model, x, mix_mag=None):
    """The stems' (B, S, C, ...) estimates through the separation entry of the contract."""
    if model.spectral:
        return model.stem_magnitudes(x, x if mix_mag is None else mix_mag)
    return model.stem_waveforms(x)


@pytest.mark.parametrize("name", FAMILIES)
def test_shapes_for_any_length(name):
    cfg = tiny_config(name)
    model = build_model(cfg).eval()
    s, c = len(cfg.stems), cfg.audio.channels
    for frames in (1, 7, 37):
        x = _input(model, cfg, frames)
        with torch.no_grad():
            out = model(x)
            stems = _stems_of(model, x)
        if model.output_kind == "embeddings":
            emb, masks = out
            assert emb.shape == (2, c, cfg.n_bins, frames, cfg.model.params.embedding_size)
            assert torch.allclose(emb.norm(dim=-1), torch.ones(()), atol=1e-5)  # unit vectors
            assert masks.shape == (2, s, c, cfg.n_bins, frames)
        elif model.output_kind == "masks":
            assert out.shape == (2, s, c, cfg.n_bins, frames) and out.min() >= 0 and out.max() <= 1
        assert stems.shape == (2, s, *x.shape[1:]) and torch.isfinite(stems).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_save_and_load_give_the_same_stems(name, tmp_path):
    cfg = tiny_config(name)
    torch.manual_seed(3)
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "m.ckpt", model, cfg)
    loaded = load_checkpoint(tmp_path / "m.ckpt")
    assert loaded.config == cfg and loaded.model.name == name
    x = _input(model, cfg, 20)
    with torch.no_grad():
        assert torch.equal(_stems_of(model, x), _stems_of(loaded.model, x))


@pytest.mark.parametrize("name", FAMILIES)
def test_one_training_step_changes_what_the_model_learns(name):
    cfg = tiny_config(name)
    torch.manual_seed(0)
    model = build_model(cfg)
    mix = torch.from_numpy(tone_mix(0.5))[None].repeat(2, 1, 1)
    sources = torch.stack([mix * (0.1 + 0.2 * i) for i in range(len(cfg.stems))], dim=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_fn = SeparationLoss(cfg)
    if model.trained_by == "fit":
        stft = loss_fn.stft
        loss = torch.tensor(model.fit_step(stft(mix).abs(), stft(sources).abs()))
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        loss = loss_fn(TrainForward(model, loss_fn.wants_logits), mix, sources).loss
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed, "a training step changed nothing"


@pytest.mark.parametrize("name", FAMILIES)
def test_a_few_training_steps_then_a_separation(name, corpus, tmp_path):
    run = tmp_path / "run"
    result = run_train(TrainOptions(config=CONFIGS / f"{name}.yaml", data=corpus, out=run, device="cpu",
                                    overrides=TINY[name] + FAST + ["train.max_steps=3", "train.val_excerpts=2"]))
    assert result.step == 3 and result.best_step >= 0
    assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file()
    loaded = load_checkpoint(run / "best.ckpt")
    mix = tone_mix(2.3, seed=4)
    stems = torch_engine(loaded, EngineSettings(segment_seconds=1.0)).separate(mix)
    assert stems.shape == (len(loaded.stems), *mix.shape) and np.isfinite(stems).all()
    assert np.abs(stems).max() > 1e-3  # the stems carry the mixture's sound, not silence


def test_every_new_family_is_registered_with_its_config():
    for name in FAMILIES:
        assert load_config(CONFIGS / f"{name}.yaml").model.name == name
        assert model_class(name).name == name


@pytest.mark.parametrize("name,override,match", [
    ("crnn", "model.pool=64", "model.max_bin: 1024 bins pooled by 64"),
    ("transformer", "model.num_heads=3", "model.d_model: 256 must split"),
    ("deep_clustering", "model.separation=spectral", "model.separation: 'spectral' is not one of"),
    ("waveform_fnn", "model.window=1023", "model.window: 1023 must be even"),
    ("nmf", "model.beta=3", "model.beta: 3.0 must be in"),
    ("nmf", "model.backend=jax", "model.backend: 'jax' is not one of"),
])
def test_settings_a_family_cannot_take_are_config_errors(name, override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIGS / f"{name}.yaml", [override])
