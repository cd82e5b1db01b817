"""The triangle cross-fade (separate.crossfade: triangle, Demucs' segmenting) in the streaming engine:
overlap-add adds nothing of its own, short segments are padded with the mixture around them, the
stream's block sizes change nothing, and shifts are seeded offsets of up to half a second."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from stemsplit.separation import triangle
from stemsplit.separation.engine import Engine
from stemsplit.settings import EngineSettings


class WavePassThrough:
    """A numpy waveform runner whose stems are copies of its input; it records the chunks it gets."""

    spectral = False

    def __init__(self, config, n_stems: int = 4):
        self.config, self.n_stems, self.chunks = config, n_stems, []

    def context_frames(self):
        return None

    def stem_waveforms(self, wav):
        self.chunks.append(wav[0].copy())
        return np.repeat(wav[:, None], self.n_stems, axis=1) * np.arange(1, self.n_stems + 1)[None, :, None, None]

    def stem_magnitudes(self, mag):
        raise AssertionError("a waveform runner is never asked for magnitudes")


def _config(segment: float = 0.1, overlap: float = 0.25, shifts: int = 0):
    return tiny_config("unet", ["separate.crossfade=triangle", f"separate.segment_seconds={segment}",
                                f"separate.overlap={overlap}", f"separate.shifts={shifts}"])


@pytest.fixture(scope="module")
def signal():
    return (np.random.default_rng(0).standard_normal((2, 44100)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("segment,overlap", [(0.1, 0.25), (0.05, 0.5), (0.2, 0.1), (3.0, 0.25)])
@pytest.mark.parametrize("shifts", [0, 1, 3])
def test_overlap_add_adds_nothing_of_its_own(signal, segment, overlap, shifts):
    runner = WavePassThrough(_config(segment, overlap, shifts))
    engine = Engine(runner)
    calls = []
    out = engine.separate(signal, on_segment=calls.append)
    assert out.shape == (4, 2, signal.shape[-1]) and out.dtype == np.float32
    for s in range(4):
        np.testing.assert_allclose(out[s], signal * (s + 1), rtol=1e-6, atol=1e-7)
    assert len(calls) == engine.num_segments(signal.shape[-1]) and calls[-1] == signal.shape[-1]
    assert all(chunk.shape[-1] == engine.segment for chunk in runner.chunks)  # always the full segment


def test_segments_are_exact_and_short_ones_are_padded_with_the_mixture(signal):
    runner = WavePassThrough(_config(0.1, 0.25))
    engine = Engine(runner)
    assert engine.segment == 4410 and engine.segment - engine.overlap == int(0.75 * 4410)
    x = signal[:, :10000]
    engine.separate(x)
    stride, seg = engine.segment - engine.overlap, engine.segment
    offsets = list(range(0, x.shape[-1], stride))
    assert len(runner.chunks) == len(offsets)
    for offset, chunk in zip(offsets, runner.chunks):
        n = min(seg, x.shape[-1] - offset)
        left = offset - (seg - n) // 2
        expected = np.zeros((2, seg), np.float32)
        lo, hi = max(left, 0), min(left + seg, x.shape[-1])
        expected[:, lo - left:hi - left] = x[:, lo:hi]
        np.testing.assert_array_equal(chunk, expected)
    assert np.abs(runner.chunks[-1][:, :100]).sum() > 0  # the short last chunk reaches back into the signal


class Quirky(WavePassThrough):
    """Stems that depend on where the segment starts, so the overlap-add's weights show."""

    def stem_waveforms(self, wav):
        self.chunks.append(wav[0].copy())
        ramp = np.linspace(0.5, 1.5, wav.shape[-1], dtype=np.float32)
        return np.stack([wav * ramp, wav * ramp[::-1], wav ** 2, wav], axis=1)


@pytest.mark.parametrize("shifts", [0, 2])
def test_block_sizes_of_the_stream_change_nothing(signal, shifts):
    whole = Engine(Quirky(_config(0.1, 0.25, shifts))).separate(signal)
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(signal.shape[-1], 30, replace=False))
    blocks = np.split(signal, cuts, axis=-1)
    streamed = np.concatenate(list(Engine(Quirky(_config(0.1, 0.25, shifts))).stream(iter(blocks))), axis=-1)
    np.testing.assert_array_equal(streamed, whole)


def test_shifts_average_seeded_offset_passes(signal):
    x = signal[:, :9000]
    leads = triangle.shift_leads(2, 44100)
    assert leads == triangle.shift_leads(2, 44100) and all(0 <= d <= 22050 for d in leads) and leads[0] != leads[1]
    passes = [Engine(Quirky(_config())).separate(np.pad(x, ((0, 0), (d, 0))))[..., d:] for d in leads]
    shifted = Engine(Quirky(_config(shifts=2))).separate(x)
    np.testing.assert_allclose(shifted, (passes[0] + passes[1]) / 2, rtol=1e-6, atol=1e-7)
    flag = Engine(Quirky(_config(shifts=2)), EngineSettings(shifts=0)).separate(x)  # the flag overrides
    np.testing.assert_array_equal(flag, Engine(Quirky(_config())).separate(x))


def test_the_weight_is_the_publishers_triangle():
    for segment, power in ((10, 1.0), (11, 1.0), (9, 2.0)):
        t = torch.cat([torch.arange(1, segment // 2 + 1), torch.arange(segment - segment // 2, 0, -1)])
        expected = ((t / t.max()) ** power).numpy()
        np.testing.assert_allclose(triangle.triangle_weight(segment, power), expected, rtol=1e-7)
    assert triangle.count_outputs(0, 5) == 0 and triangle.count_outputs(11, 5) == 3


def test_a_spectral_model_runs_under_the_triangle_too(signal):
    from stemsplit.models import build_model
    from stemsplit.separation.torch_runner import TorchRunner

    cfg = tiny_config("unet", ["separate.crossfade=triangle", "separate.segment_seconds=0.3"])
    out = Engine(TorchRunner(build_model(cfg).eval(), cfg, "cpu")).separate(signal[:, :30000])
    assert out.shape == (4, 2, 30000) and np.isfinite(out).all()
