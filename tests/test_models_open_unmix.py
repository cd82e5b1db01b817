"""The open_unmix family: Open-Unmix's per-stem BiLSTM under stemsplit's model contract.

Its per-target parameter names are the publisher's, so the reference package's own networks
(``openunmix.model.OpenUnmix``) load into it by prefixing ``targets.<i>.`` and must give the
same magnitudes, bit for bit on the same CPU."""
from __future__ import annotations

import pytest
import torch
from conftest import CONFIGS, tiny_config, tone_mix
from openunmix.model import OpenUnmix as Reference

from stemsplit.config import ConfigError, load_config
from stemsplit.models import build_model, model_class
from stemsplit.models.open_unmix import OpenUnmix, OpenUnmixParams
from stemsplit.training.losses import SeparationLoss, TrainForward

N_BINS, CHANNELS = 129, 2


def _references(n: int, *, hidden: int = 12, layers: int = 2, max_bin: int = 40, unidirectional: bool = False,
                seed: int = 0) -> list[Reference]:
    """``n`` reference networks with every weight, running statistic and affine map moved off its start."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    nets = []
    for _ in range(n):
        net = Reference(nb_bins=N_BINS, nb_channels=CHANNELS, hidden_size=hidden, nb_layers=layers, max_bin=max_bin,
                        unidirectional=unidirectional).eval()
        with torch.no_grad():
            for key, value in net.state_dict().items():
                if key.endswith("running_var"):
                    value.copy_(0.5 + torch.rand(value.shape, generator=gen))
                elif value.is_floating_point():
                    value.add_(0.2 * torch.randn(value.shape, generator=gen))
        nets.append(net)
    return nets


def _ours_with(nets: list[Reference], **params) -> OpenUnmix:
    model = OpenUnmix(OpenUnmixParams(**params), n_bins=N_BINS, n_channels=CHANNELS, n_stems=len(nets)).eval()
    state = {f"targets.{i}.{key}": value for i, net in enumerate(nets) for key, value in net.state_dict().items()}
    model.load_state_dict(state, strict=True)  # the documented rename is the whole mapping
    return model


@pytest.mark.parametrize("unidirectional", [False, True])
def test_the_publishers_networks_load_by_a_prefix_and_give_the_same_magnitudes(unidirectional):
    nets = _references(3, unidirectional=unidirectional)
    model = _ours_with(nets, hidden_size=12, num_layers=2, max_bin=40, unidirectional=unidirectional)
    mag = torch.rand(2, CHANNELS, N_BINS, 23) ** 2 * 4
    with torch.no_grad():
        ours = model.stem_magnitudes(mag, mag)
        theirs = torch.stack([net(mag.clone()) for net in nets], dim=1)
    assert ours.shape == (2, 3, CHANNELS, N_BINS, 23)
    assert torch.equal(ours, theirs)
    assert (ours >= 0).all() and ours.abs().max() > 0


def test_output_is_a_magnitude_that_scales_the_mixture_and_any_length_runs():
    cfg = tiny_config("open_unmix")
    model = build_model(cfg).eval()
    assert model.output_kind == "spectrograms" and model.input_kind == "magnitude"
    assert model.context_frames() is None  # recurrent: unbounded context
    for frames in (1, 7):
        mag = torch.rand(1, cfg.audio.channels, cfg.n_bins, frames)
        with torch.no_grad():
            out = model(mag)
        assert out.shape == (1, len(cfg.stems), cfg.audio.channels, cfg.n_bins, frames)
        # relu(...) * mixture: a silent bin of the mixture is silent in every stem
        mag[..., 0, :] = 0
        with torch.no_grad():
            assert (model(mag)[..., 0, :] == 0).all()


@pytest.mark.parametrize("override,match", [
    ("model.hidden_size=15", "model.hidden_size: 15 must be even"),
    ("model.max_bin=5000", "model.max_bin: 5000 must be in"),
    ("model.num_layers=0", "model.num_layers: must be >= 1"),
    ("model.dropout=1.5", "model.dropout: must be in"),
])
def test_settings_it_cannot_take_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIGS / "open_unmix.yaml", [override])


def test_an_odd_hidden_size_is_fine_for_the_causal_variant():
    cfg = load_config(CONFIGS / "open_unmix.yaml", ["model.hidden_size=15", "model.unidirectional=true",
                                                    "model.max_bin=64", "stft.n_fft=512", "stft.hop_length=128"])
    assert isinstance(build_model(cfg), model_class("open_unmix"))


def test_its_config_carries_open_unmix_separation_settings():
    separate = load_config(CONFIGS / "open_unmix.yaml").separate
    assert (separate.wiener_iterations, separate.wiener_window_frames) == (1, 300)
    assert (separate.wiener_scale_divisor, separate.wiener_load) == (10.0, 1e-5)


def test_one_training_step_changes_every_stem_network():
    cfg = tiny_config("open_unmix")
    torch.manual_seed(0)
    model = build_model(cfg)
    mix = torch.from_numpy(tone_mix(0.5))[None].repeat(2, 1, 1)
    sources = torch.stack([mix * (0.1 + 0.2 * i) for i in range(len(cfg.stems))], dim=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_fn = SeparationLoss(cfg)
    loss = loss_fn(TrainForward(model, loss_fn.wants_logits), mix, sources).loss
    loss.backward()
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    assert torch.isfinite(loss)
    for i in range(len(cfg.stems)):
        key = f"targets.{i}.fc1.weight"
        assert not torch.equal(model.state_dict()[key], before[key]), f"stem {i} did not learn"
