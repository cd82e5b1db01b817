from dataclasses import dataclass

import pytest
import torch

from stemsplit.config import load_config
from stemsplit.models import SeparationModel, build_model
from stemsplit.separation.engine import Separator, crossfade_window
from stemsplit.settings import EngineSettings
from stemsplit.separation.wiener import wiener
from conftest import CONFIGS, tiny_config


@dataclass
class _NoParams:
    pass


class PassThrough(SeparationModel):
    """A model whose every mask is 1: separation must give the input back for every stem."""

    params_class = _NoParams

    def __init__(self, n_stems: int):
        super().__init__(_NoParams(), n_bins=0, n_channels=2, n_stems=n_stems)

    def forward(self, mag):
        return torch.ones(mag.shape[0], self.n_stems, *mag.shape[1:])


@pytest.fixture(scope="module")
def signal():
    torch.manual_seed(0)
    return torch.randn(2, 44100 * 5) * 0.1


@pytest.mark.parametrize("segment", [0.3, 1.0, 2.2, 100.0])
@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_pass_through_mask_returns_the_input(signal, segment, overlap):
    """Overlap-add adds nothing of its own, at every segment and overlap setting."""
    cfg = load_config(CONFIGS / "lstm.yaml")
    sep = Separator(PassThrough(4), cfg, EngineSettings(segment_seconds=segment, overlap=overlap))
    out = sep.separate_tensor(signal)
    assert out.shape == (4, *signal.shape)
    for s in range(4):
        assert (out[s] - signal).norm() / signal.norm() < 1e-4


@pytest.mark.parametrize("segment,overlap", [(1.0, 0.5), (2.0, 0.3), (3.0, 0.25)])
def test_mask_cnn_chunked_equals_unchunked(signal, segment, overlap):
    """mask_cnn's 25-frame receptive field fits in the overlap's margin: no seam at all."""
    cfg = load_config(CONFIGS / "mask_cnn.yaml")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    whole = Separator(model, cfg, EngineSettings(segment_seconds=1000)).separate_tensor(signal)
    chunked = Separator(model, cfg, EngineSettings(segment_seconds=segment, overlap=overlap))
    assert chunked.num_segments(signal.shape[-1]) > 1
    out = chunked.separate_tensor(signal)
    assert (out - whole).norm() / whole.norm() < 1e-4


def test_segments_are_hop_aligned_and_counted():
    cfg = load_config(CONFIGS / "unet.yaml")
    sep = Separator(PassThrough(4), cfg, EngineSettings(segment_seconds=3.0, overlap=0.25))
    hop = cfg.stft.hop_length
    assert sep.segment % hop == 0 and sep.overlap % hop == 0
    x = torch.randn(2, 44100 * 10)
    calls = []
    sep.separate_tensor(x, on_segment=calls.append)
    assert len(calls) == sep.num_segments(x.shape[-1])
    assert calls[-1] == x.shape[-1]


def test_crossfade_windows_sum_to_one():
    n, ov = 1000, 200
    a = crossfade_window(n, ov, first=True, last=False)
    b = crossfade_window(n, ov, first=False, last=True)
    summed = a[n - ov :] + b[:ov]
    assert torch.allclose(summed, torch.ones(ov, dtype=summed.dtype))
    assert a[-ov // 4 :].abs().max() == 0 and b[: ov // 4].abs().max() == 0


def test_every_architecture_separates_short_and_silent_input(arch):
    cfg = tiny_config(arch)
    model = build_model(cfg).eval()
    sep = Separator(model, cfg, EngineSettings(segment_seconds=0.5, overlap=0.25))
    for x in (torch.zeros(2, 22050), torch.randn(2, 300) * 0.1, torch.randn(2, 44100) * 0.1):
        out = sep.separate_tensor(x)
        assert out.shape == (len(cfg.stems), 2, x.shape[-1]) and torch.isfinite(out).all()


def test_shifts_and_wiener_keep_shape_and_stay_finite(signal):
    cfg = tiny_config("unet")
    model = build_model(cfg).eval()
    sep = Separator(model, cfg, EngineSettings(segment_seconds=1.0, shifts=3, wiener_iterations=2))
    out = sep.separate_tensor(signal[:, :44100])
    assert out.shape == (4, 2, 44100) and torch.isfinite(out).all()


def test_the_model_config_sets_the_default_wiener_iterations(signal):
    cfg = tiny_config("unet", ["separate.wiener_iterations=1"])
    model = build_model(cfg).eval()
    x = signal[:, :44100]
    by_config = Separator(model, cfg).separate_tensor(x)
    explicit = Separator(model, cfg, EngineSettings(wiener_iterations=1)).separate_tensor(x)
    plain = Separator(model, cfg, EngineSettings(wiener_iterations=0)).separate_tensor(x)
    torch.testing.assert_close(by_config, explicit)
    assert not torch.allclose(by_config, plain, atol=1e-4)


def test_wiener_uses_spatial_cues_and_conserves_the_mixture():
    """Panned sources: EM refinement beats plain ratio masking, and estimates sum to the mix."""
    torch.manual_seed(0)
    f, t = 64, 80
    pans = torch.tensor([[1.0, 0.2], [0.2, 1.0], [0.7, 0.7]])
    env = torch.rand(3, 1, f, t) ** 3  # sparse-ish magnitude envelopes
    src = pans[:, :, None, None] * env * torch.exp(2j * torch.pi * torch.rand(3, 1, f, t))
    mix = src.sum(0)
    power = (src.abs() ** 2).mean(1, keepdim=True)
    ratio = power / power.sum(0, keepdim=True)  # single-channel ratio mask: ignores panning
    mags = ratio * mix.abs()[None]
    err = lambda est: (((est - src).abs() ** 2).sum() / (src.abs() ** 2).sum()).item()
    plain, refined = wiener(mix, mags, 0), wiener(mix, mags, 3)
    assert err(refined) < err(plain)
    assert (refined.sum(0) - mix).norm() / mix.norm() < 1e-2  # exact up to the regulariser


def test_wiener_stems_keep_the_other_stems_plain(signal):
    """separate.wiener_stems: the named stems get the Wiener estimate, the rest plain masking."""
    torch.manual_seed(0)
    cfg = load_config(CONFIGS / "lstm.yaml", ["model.hidden_size=16", "model.num_layers=1"])
    model = build_model(cfg).eval()
    x = signal[:, : 44100 * 2]
    plain = Separator(model, cfg, EngineSettings(wiener_iterations=0)).separate_tensor(x)
    full = Separator(model, cfg, EngineSettings(wiener_iterations=1)).separate_tensor(x)
    picked_cfg = load_config(CONFIGS / "lstm.yaml", ["model.hidden_size=16", "model.num_layers=1",
                                                     "separate.wiener_stems=[drums, bass]"])
    picked = Separator(model, picked_cfg, EngineSettings(wiener_iterations=1)).separate_tensor(x)
    for s, name in enumerate(cfg.stems):
        expected = full[s] if name in ("drums", "bass") else plain[s]
        assert torch.allclose(picked[s], expected, atol=1e-5), name
    assert not torch.allclose(full[0], plain[0], atol=1e-3)  # the filter does change vocals
