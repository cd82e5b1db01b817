"""ClipSafeWriter: one pass in the final format, a float scratch only when --clip rescale needs it."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from stemsplit.audio.stem_writer import ClipSafeWriter
from stemsplit.audio.writer import to_pcm16

SR = 8000


def _blocks(x: np.ndarray, size: int = 1000):
    return [x[:, i:i + size] for i in range(0, x.shape[1], size)]


def _temps(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _write(path, x, subtype="PCM_16", clip="rescale", spy=None):
    w = ClipSafeWriter(path, SR, x.shape[0], subtype, clip)
    for b in _blocks(x):
        w.write(b)
        if spy is not None:
            spy.append(_temps(path.parent))
    return w, w.finish()


def test_pcm16_conversion_matches_libsndfile(tmp_path):
    x = np.linspace(-1, 1, 200001, dtype=np.float32)[None]
    sf.write(tmp_path / "ref.wav", x.T, SR, subtype="PCM_16")
    ref = sf.read(tmp_path / "ref.wav", dtype="int16")[0]
    assert np.array_equal(to_pcm16(x)[:, 0], ref)
    assert to_pcm16(np.array([[1.5, -1.5]], np.float32)).ravel().tolist() == [32767, -32768]  # saturates


def test_within_full_scale_written_once_in_the_final_format(tmp_path):
    x = (np.random.default_rng(0).uniform(-0.9, 0.9, (2, 9000))).astype(np.float32)
    seen = []
    w, out = _write(tmp_path / "vocals.wav", x, spy=seen)
    assert w.gain == 1.0 and out == tmp_path / "vocals.wav"
    assert all(len(t) == 1 for t in seen)  # one temporary file all along: no scratch copy
    assert np.array_equal(sf.read(out, dtype="int16")[0], to_pcm16(x))
    assert _temps(tmp_path) == [] and sf.info(out).subtype == "PCM_16"


def test_a_peak_midway_switches_to_a_scratch_file_and_rescales(tmp_path):
    x = (np.random.default_rng(1).uniform(-0.5, 0.5, (2, 9000))).astype(np.float32)
    x[1, 6500] = 2.0  # in the seventh block: six blocks went out as 16 bits already
    seen = []
    w, out = _write(tmp_path / "drums.wav", x, spy=seen)
    assert w.peak == 2.0 and np.isclose(w.gain, 0.999 / 2.0)
    assert len(seen[-1]) == 1 and seen[-1] != seen[0]  # the scratch replaced the direct file
    got = sf.read(out, dtype="float32")[0].T
    assert np.abs(got - x * np.float32(w.gain)).max() <= 1.5 / 32768  # head rounded twice: 1.5 steps
    assert _temps(tmp_path) == []
    w, out = _write(tmp_path / "drums32.wav", x, subtype="FLOAT")
    assert np.allclose(sf.read(out, dtype="float32")[0].T, x * np.float32(w.gain), atol=1e-7)


def test_clamp_and_none_never_use_a_scratch_file(tmp_path):
    x = np.full((1, 3000), 1.5, np.float32)
    seen = []
    w, out = _write(tmp_path / "bass.wav", x, clip="clamp", spy=seen)
    assert all(len(t) == 1 for t in seen) and w.gain == 1.0
    assert np.all(sf.read(out, dtype="int16")[0] == 32767)
    w, out = _write(tmp_path / "bass32.wav", x, subtype="FLOAT", clip="none")
    assert np.all(sf.read(out, dtype="float32")[0] == 1.5)


def test_abort_leaves_nothing_before_and_after_the_switch(tmp_path):
    for peak in (0.5, 3.0):
        w = ClipSafeWriter(tmp_path / "other.wav", SR, 1, "PCM_16", "rescale")
        w.write(np.full((1, 500), 0.1, np.float32))
        w.write(np.full((1, 500), peak, np.float32))
        w.abort()
        w.abort()
        assert list(tmp_path.iterdir()) == []
