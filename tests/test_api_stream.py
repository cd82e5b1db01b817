"""``stemsplit.StreamSeparator``: blocks in, stems of the same length out, latency_samples late,
from a sounddevice-style callback too; mono; one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
from test_cli_stream import files, song_signal  # noqa: F401  (the module fixture: a tiny causal model)

import stemsplit
from stemsplit.pipelines.stream import default_streaming_model


def blocks_of(x: np.ndarray, size: int):
    return [x[..., i:i + size] for i in range(0, x.shape[-1], size)]


def test_process_returns_each_stem_for_the_block_and_flush_the_rest(files):  # noqa: F811
    live = stemsplit.StreamSeparator(files["onnx"])
    assert live.latency_samples == 511 and live.stems == ["vocals", "drums", "bass", "other"]
    assert "latency=11.6 ms" in repr(live)
    x = song_signal(0.5)
    parts = [live.process(b) for b in blocks_of(x, 300)]
    assert all(p["vocals"].shape == b.shape and p["vocals"].dtype == np.float32
               for p, b in zip(parts, blocks_of(x, 300)))
    tail = live.flush()
    vocals = np.concatenate([p["vocals"] for p in parts] + [tail["vocals"]], axis=-1)[:, 511:]
    assert vocals.shape == x.shape
    again = [live.process(b)["vocals"] for b in blocks_of(x, 4096)]  # after flush: a new stream, same result
    np.testing.assert_array_equal(np.concatenate(again, axis=-1)[:, 511:], vocals[:, :-511])


def test_it_runs_from_a_sounddevice_style_callback(files):  # noqa: F811
    """The callback of docs/streaming.md: (frames, channels) in, drums + bass + other out."""
    live = stemsplit.StreamSeparator(files["onnx"])
    block = 512
    stems = np.zeros((len(live.stems), 2, block), np.float32)
    karaoke = np.zeros((2, block), np.float32)

    def callback(indata, outdata, frames, time, status):
        live.process(indata.T, out=stems)
        np.sum(stems[1:], axis=0, out=karaoke)
        outdata[:] = karaoke.T

    x = song_signal(0.5)[:, :40 * block]
    played = []
    for b in blocks_of(x, block):
        out = np.full((block, 2), np.nan, np.float32)
        callback(np.ascontiguousarray(b.T), out, block, None, None)
        played.append(out.T)
    check = stemsplit.StreamSeparator(files["onnx"])
    parts = [check.process(b) for b in blocks_of(x, 4096)]
    others = sum(np.concatenate([p[s] for p in parts], axis=-1) for s in ("drums", "bass", "other"))
    np.testing.assert_allclose(np.concatenate(played, axis=-1), others, rtol=0, atol=1e-6)


def test_mono_is_separated_as_both_channels_and_averaged_back(files):  # noqa: F811
    mono = stemsplit.StreamSeparator(files["onnx"], channels=1)
    stereo = stemsplit.StreamSeparator(files["onnx"])
    x = song_signal(0.3)[:1]
    got = np.concatenate([mono.process(b[0])["bass"] for b in blocks_of(x, 700)], axis=-1)
    both = np.concatenate([stereo.process(np.repeat(b, 2, axis=0))["bass"] for b in blocks_of(x, 700)], axis=-1)
    assert got.shape == x.shape
    np.testing.assert_allclose(got[0], both.mean(axis=0), rtol=0, atol=1e-6)
    assert mono.flush()["bass"].shape == (1, 511)


@pytest.mark.parametrize("kwargs,block,message", [
    ({"sample_rate": 48000}, None, "streams at 44100 Hz"),
    ({"channels": 3}, None, "channels 3: 1 or 2"),
    ({}, np.zeros((512, 2), np.float32), "pass indata.T"),
    ({}, np.full((2, 64), np.nan, np.float32), "NaN or infinite"),
], ids=["rate", "channels", "frames-first", "nan"])
def test_mistakes_are_one_line_errors(files, kwargs, block, message):  # noqa: F811
    with pytest.raises(stemsplit.StemsplitError, match=message) as err:
        live = stemsplit.StreamSeparator(files["onnx"], **kwargs)
        live.process(block)
    assert "\n" not in str(err.value)


def test_the_default_is_the_registry_s_streaming_model(monkeypatch):
    from stemsplit import pretrained
    from stemsplit.errors import CheckpointError

    models = {"big": {"file": "big.ckpt"}, "live": {"file": "live.ckpt", "streaming": True, "latency_ms": 46.4}}
    monkeypatch.setattr(pretrained, "registry", lambda: {"default": "big", "models": models})
    assert default_streaming_model() == "live"
    monkeypatch.setattr(pretrained, "registry", lambda: {"default": "big", "models": models, "stream_default": "x"})
    assert default_streaming_model() == "x"
    monkeypatch.setattr(pretrained, "registry", lambda: {"default": "big", "models": {"big": {"file": "b"}}})
    with pytest.raises(CheckpointError, match="no streaming model ships with this build yet"):
        default_streaming_model()
