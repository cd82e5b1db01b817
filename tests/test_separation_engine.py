"""The numpy engine: overlap-add adds nothing of its own, models see the same numbers as unchunked,
shifts / Wiener / wiener_stems behave, and any NetworkRunner drives it."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CONFIGS, tiny_config

from stemsplit.config import load_config
from stemsplit.models import build_model
from stemsplit.separation.engine import Engine, crossfade_window
from stemsplit.separation.torch_runner import TorchRunner
from stemsplit.separation.wiener import wiener
from stemsplit.settings import EngineSettings


class PassThrough:
    """A numpy NetworkRunner whose every mask is 1: separation must give the input back for every stem."""

    spectral = True

    def __init__(self, config, n_stems: int = 4):
        self.config, self.n_stems = config, n_stems
        self.calls = []

    def context_frames(self):
        return None

    def stem_magnitudes(self, mag):
        self.calls.append(mag.shape)
        return np.repeat(mag[:, None], self.n_stems, axis=1)

    def stem_waveforms(self, wav):
        raise AssertionError("a spectral runner is never asked for waveforms")


class PassThroughMasks(PassThrough):
    """The same runner giving masks of 1 (``mask_output``): the engine applies them itself."""

    mask_output = True

    def __init__(self, config, n_stems: int = 4):
        super().__init__(config, n_stems)
        self.outs = []  # the arrays the masks were written into

    def stem_magnitudes(self, mag):
        raise AssertionError("a mask runner is asked for masks")

    def stem_masks(self, mag, out=None):
        self.calls.append(mag.shape)
        out = np.empty((mag.shape[0], self.n_stems) + mag.shape[1:], np.float32) if out is None else out
        self.outs.append(out)
        out[...] = 1.0
        return out


def _engine(model, cfg, settings=None):
    return Engine(TorchRunner(model, cfg, "cpu"), settings)


@pytest.fixture(scope="module")
def signal():
    return (np.random.default_rng(0).standard_normal((2, 44100 * 5)) * 0.1).astype(np.float32)


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("segment", [0.3, 1.0, 2.2, 100.0])
@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_pass_through_mask_returns_the_input(signal, segment, overlap):
    """Overlap-add adds nothing of its own, at every segment and overlap setting."""
    cfg = load_config(CONFIGS / "lstm.yaml")
    sep = Engine(PassThrough(cfg), EngineSettings(segment_seconds=segment, overlap=overlap))
    out = sep.separate(signal)
    assert out.shape == (4, *signal.shape) and out.dtype == np.float32
    for s in range(4):
        assert _rel(out[s], signal) < 1e-4


@pytest.mark.parametrize("wiener", [0, 1])
def test_a_mask_runner_gets_its_masks_applied_to_the_complex_spectrum(signal, wiener):
    """Masks of 1 from ``stem_masks`` give the input back too, with and without the Wiener filter."""
    cfg = load_config(CONFIGS / "lstm.yaml")
    runner = PassThroughMasks(cfg)
    out = Engine(runner, EngineSettings(segment_seconds=2.0, wiener_iterations=wiener)).separate(signal)
    assert runner.calls and out.shape == (4, *signal.shape)
    for s in range(4):  # Wiener: four equal stems share the mixture in quarters
        assert _rel(out[s] * (4 if wiener else 1), signal) < 1e-3
    # the engine hands the network the same output arrays again (at most two segments are in flight),
    # so their pages are not mapped afresh for every segment; the shorter last segment gets its own
    full = [a for a in runner.outs if a.shape == runner.outs[0].shape]
    assert len(full) == 3 and len({id(a) for a in full}) == 2
    assert runner.outs[-1].shape[-1] < full[0].shape[-1] and all(runner.outs[-1] is not a for a in full)


@pytest.mark.parametrize("segment,overlap", [(1.0, 0.5), (2.0, 0.3), (3.0, 0.25)])
def test_mask_cnn_chunked_equals_unchunked(signal, segment, overlap):
    """mask_cnn's 25-frame receptive field fits in the overlap's margin: no seam at all."""
    cfg = load_config(CONFIGS / "mask_cnn.yaml")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    whole = _engine(model, cfg, EngineSettings(segment_seconds=1000)).separate(signal)
    chunked = _engine(model, cfg, EngineSettings(segment_seconds=segment, overlap=overlap))
    assert chunked.num_segments(signal.shape[-1]) > 1
    out = chunked.separate(signal)
    assert _rel(out, whole) < 1e-4


def test_segments_are_hop_aligned_and_counted():
    cfg = load_config(CONFIGS / "unet.yaml")
    runner = PassThrough(cfg)
    sep = Engine(runner, EngineSettings(segment_seconds=3.0, overlap=0.25))
    hop = cfg.stft.hop_length
    assert sep.segment % hop == 0 and sep.overlap % hop == 0
    x = np.random.default_rng(1).standard_normal((2, 44100 * 10)).astype(np.float32)
    calls = []
    sep.separate(x, on_segment=calls.append)
    assert len(calls) == sep.num_segments(x.shape[-1]) == len(runner.calls)
    assert calls[-1] == x.shape[-1]
    # the runner gets one (1, C, F, T) magnitude per segment, every one a full segment but the last
    assert all(shape[:3] == (1, 2, cfg.n_bins) for shape in runner.calls)
    assert runner.calls[0][3] == sep.segment // hop + 1


def test_crossfade_windows_sum_to_one():
    n, ov = 1000, 200
    a = crossfade_window(n, ov, first=True, last=False)
    b = crossfade_window(n, ov, first=False, last=True)
    summed = a[n - ov :] + b[:ov]
    np.testing.assert_allclose(summed, np.ones(ov), rtol=0, atol=1e-12)
    assert np.abs(a[-ov // 4 :]).max() == 0 and np.abs(b[: ov // 4]).max() == 0


def test_every_architecture_separates_short_and_silent_input(arch):
    cfg = tiny_config(arch)
    model = build_model(cfg).eval()
    sep = _engine(model, cfg, EngineSettings(segment_seconds=0.5, overlap=0.25))
    rng = np.random.default_rng(2)
    for x in (np.zeros((2, 22050), np.float32), rng.standard_normal((2, 300)) * 0.1,
              rng.standard_normal((2, 44100)) * 0.1):
        out = sep.separate(x)
        assert out.shape == (len(cfg.stems), 2, x.shape[-1]) and np.isfinite(out).all()
    assert sep.separate(np.zeros((2, 0), np.float32)).shape == (len(cfg.stems), 2, 0)


def test_shifts_and_wiener_keep_shape_and_stay_finite(signal):
    cfg = tiny_config("unet")
    model = build_model(cfg).eval()
    sep = _engine(model, cfg, EngineSettings(segment_seconds=1.0, shifts=3, wiener_iterations=2))
    out = sep.separate(signal[:, :44100])
    assert out.shape == (4, 2, 44100) and np.isfinite(out).all()


def test_shifts_average_passes_on_shifted_input(signal):
    """shifts=2 is the mean of the plain pass and a pass on the input delayed by hop / 2."""
    cfg = tiny_config("unet")
    model = build_model(cfg).eval()
    x = signal[:, :20000]
    hop = cfg.stft.hop_length
    plain = _engine(model, cfg, EngineSettings(segment_seconds=1000)).separate(x)
    delayed = _engine(model, cfg, EngineSettings(segment_seconds=1000)).separate(
        np.pad(x, ((0, 0), (hop // 2, 0))))[..., hop // 2:]
    shifted = _engine(model, cfg, EngineSettings(segment_seconds=1000, shifts=2)).separate(x)
    assert _rel(plain, delayed) > 1e-3  # the shift does change the estimate
    np.testing.assert_allclose(shifted, (plain + delayed) / 2, rtol=0, atol=1e-5)


def test_the_model_config_sets_the_default_wiener_iterations(signal):
    cfg = tiny_config("unet", ["separate.wiener_iterations=1"])
    model = build_model(cfg).eval()
    x = signal[:, :44100]
    by_config = _engine(model, cfg).separate(x)
    explicit = _engine(model, cfg, EngineSettings(wiener_iterations=1)).separate(x)
    plain = _engine(model, cfg, EngineSettings(wiener_iterations=0)).separate(x)
    np.testing.assert_allclose(by_config, explicit, rtol=1e-5, atol=1e-6)
    assert not np.allclose(by_config, plain, atol=1e-4)


def test_wiener_uses_spatial_cues_and_conserves_the_mixture():
    """Panned sources: EM refinement beats plain ratio masking, and estimates sum to the mix."""
    rng = np.random.default_rng(0)
    f, t = 64, 80
    pans = np.array([[1.0, 0.2], [0.2, 1.0], [0.7, 0.7]])
    env = rng.uniform(size=(3, 1, f, t)) ** 3  # sparse-ish magnitude envelopes
    src = (pans[:, :, None, None] * env * np.exp(2j * np.pi * rng.uniform(size=(3, 1, f, t)))).astype(np.complex64)
    mix = src.sum(0)
    power = (np.abs(src) ** 2).mean(1, keepdims=True)
    ratio = power / power.sum(0, keepdims=True)  # single-channel ratio mask: ignores panning
    mags = (ratio * np.abs(mix)[None]).astype(np.float32)

    def err(est):
        return float((np.abs(est - src) ** 2).sum() / (np.abs(src) ** 2).sum())

    plain, refined = wiener(mix, mags, 0), wiener(mix, mags, 3)
    assert err(refined) < err(plain)
    assert _rel(refined.sum(0), mix) < 1e-2  # exact up to the regulariser


def test_wiener_stems_keep_the_other_stems_plain(signal):
    """separate.wiener_stems: the named stems get the Wiener estimate, the rest plain masking."""
    torch.manual_seed(0)
    cfg = load_config(CONFIGS / "lstm.yaml", ["model.hidden_size=16", "model.num_layers=1"])
    model = build_model(cfg).eval()
    x = signal[:, : 44100 * 2]
    plain = _engine(model, cfg, EngineSettings(wiener_iterations=0)).separate(x)
    full = _engine(model, cfg, EngineSettings(wiener_iterations=1)).separate(x)
    picked_cfg = load_config(CONFIGS / "lstm.yaml", ["model.hidden_size=16", "model.num_layers=1",
                                                     "separate.wiener_stems=[drums, bass]"])
    picked = _engine(model, picked_cfg, EngineSettings(wiener_iterations=1)).separate(x)
    for s, name in enumerate(cfg.stems):
        expected = full[s] if name in ("drums", "bass") else plain[s]
        np.testing.assert_allclose(picked[s], expected, rtol=0, atol=1e-5, err_msg=name)
    assert not np.allclose(full[0], plain[0], atol=1e-3)  # the filter does change vocals


def test_the_engine_imports_without_torch():
    """The lean path: the engine, its runner seam, the STFT and the Wiener filter never load torch."""
    code = ("import sys, stemsplit.separation.engine, stemsplit.separation.runner, stemsplit.audio.stft_numpy; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
