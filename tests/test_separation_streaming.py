"""The streaming engine: its declared latency is exact, its stems do not depend on the block size,
they equal a whole-signal causal separation shifted by that latency, and its hot path allocates
nothing."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from conftest import CONFIGS, tone_mix
from test_onnx_stream import causal_model

from stemsplit.audio.stft_numpy import hann
from stemsplit.config import ConfigError, load_config
from stemsplit.onnx_export import export_onnx
from stemsplit.separation.onnx_runner import load_onnx_runner
from stemsplit.separation.stream_step import open_stream_step
from stemsplit.separation.streaming import StreamEngine
from stemsplit.separation.torch_runner import TorchRunner


class PassThrough:
    """A ``StreamStep`` whose masks are all ones (every stem is the mixture), with ``lookahead`` frames."""

    def __init__(self, config, lookahead: int = 0):
        self.config, self.output_kind, self.lookahead_frames = config, "masks", lookahead
        c, f, s = config.audio.channels, config.n_bins, len(config.stems)
        self.mag = np.zeros((1, c, f, 1), np.float32)
        self.out = np.ones((1, s, c, f, 1), np.float32)

    def run(self) -> None:
        pass

    def reset(self) -> None:
        pass


def shipped_stft(extra: list[str] | None = None):
    """The streaming configuration as shipped: n_fft 2048, hop 512."""
    return load_config(CONFIGS / "crnn_causal.yaml", extra or [])


def stream(engine: StreamEngine, x: np.ndarray, block: int) -> np.ndarray:
    """(C, n) through ``engine`` in blocks of ``block`` -> (S, C, n)."""
    engine.reset()
    out = [engine.process(x[:, i:i + block]) for i in range(0, x.shape[-1], block)]
    return np.concatenate(out, axis=-1)


def snr_db(got: np.ndarray, want: np.ndarray) -> float:
    err = float(((got.astype(np.float64) - want) ** 2).sum())
    return np.inf if err == 0 else 10 * np.log10(float((want.astype(np.float64) ** 2).sum()) / err)


@pytest.mark.parametrize("lookahead", [0, 2])
@pytest.mark.parametrize("block", [1, 97, 512, 4096])
def test_an_impulse_comes_out_exactly_the_declared_latency_later(lookahead, block):
    engine = StreamEngine(PassThrough(shipped_stft(), lookahead))
    assert engine.latency_samples == 2048 - 1 + 512 * lookahead  # 46.4 ms at 44.1 kHz without look-ahead
    x = np.zeros((2, 6000), np.float32)
    x[0, 1234], x[1, 2000] = 1.0, -0.5
    y = stream(engine, x, block)
    assert y.shape == (4, 2, 6000)  # every block's output has its length
    lat = engine.latency_samples
    for s in range(4):
        assert int(np.argmax(np.abs(y[s, 0]))) == 1234 + lat
        assert int(np.argmax(np.abs(y[s, 1]))) == 2000 + lat
        np.testing.assert_allclose(y[s, :, lat:], x[:, :-lat], rtol=0, atol=1e-6)  # and nothing else moved
    assert np.abs(y[..., :lat]).max() < 1e-6


def test_a_pass_through_gives_the_signal_back_at_the_shipped_hop():
    engine = StreamEngine(PassThrough(shipped_stft()))
    x = tone_mix(0.5)
    y = stream(engine, x, 300)
    lat = engine.latency_samples
    np.testing.assert_allclose(y[2, :, lat:], x[:, :-lat], rtol=0, atol=2e-6)


def causal_reference(loaded, x: np.ndarray) -> np.ndarray:
    """The whole signal at once: causal frames (frame k = samples [kH - N + H, kH + H), zeros
    before the start), one ``forward`` over every frame, masks x spectrum, Hann overlap-add divided
    by the summed squared window. (S, C, t) for the times t that the complete frames finish."""
    cfg = loaded.config
    n, h = cfg.stft.n_fft, cfg.stft.hop_length
    w = hann(n).astype(np.float64)
    k = x.shape[-1] // h
    padded = np.concatenate([np.zeros((x.shape[0], n - h)), x.astype(np.float64)], axis=-1)
    frames = np.stack([padded[:, i * h:i * h + n] for i in range(k)], axis=1)          # (C, K, N)
    spec = np.fft.rfft(frames * w, axis=-1)                                             # (C, K, F)
    mag = torch.from_numpy(np.abs(spec).astype(np.float32).transpose(0, 2, 1)[None])    # (1, C, F, K)
    with torch.inference_mode():
        masks = loaded.model(mag)[0].double().numpy().transpose(0, 1, 3, 2)             # (S, C, K, F)
    parts = np.fft.irfft(masks * spec[None], n=n, axis=-1) * w
    total = np.zeros(masks.shape[:2] + ((k - 1) * h + n,))
    env = np.zeros(total.shape[-1])
    for i in range(k):
        total[..., i * h:i * h + n] += parts[:, :, i]
        env[i * h:i * h + n] += w ** 2
    y = total / np.maximum(env, 1e-12)
    return y[..., n - h:n - h + k * h - n + h]  # index 0 is time 0; times after these await later frames


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    loaded = causal_model()
    path = tmp_path_factory.mktemp("onnx") / "causal.onnx"
    export_onnx(loaded, path)
    return loaded, path


@pytest.fixture(params=["onnx", "torch"])
def engine(request, tiny) -> StreamEngine:
    loaded, path = tiny
    runner = load_onnx_runner(path, threads=1) if request.param == "onnx" else TorchRunner(loaded.model, loaded.config)
    return StreamEngine(open_stream_step(runner))


def test_the_stream_is_the_whole_signal_separation_shifted_by_the_latency(engine, tiny):
    x = tone_mix(1.0, seed=1)
    y = stream(engine, x, 512)
    lat = engine.latency_samples
    assert lat == 511
    want = causal_reference(tiny[0], x)
    got = y[..., lat:]
    want = want[..., :got.shape[-1]]
    assert snr_db(got, want) > 100  # float32 against float64: the same samples
    assert snr_db(y[..., lat - 1:-1], want) < 40 and snr_db(y[..., lat + 1:], want[..., :-1]) < 40  # one off: not


def test_the_stems_do_not_depend_on_the_block_size(engine):
    x = tone_mix(1.0, seed=2)
    ref = stream(engine, x, 512)
    for block in (97, 4096, 1):
        got = stream(engine, x, block)
        assert snr_db(got, ref) >= 60, block
    # one network frame per hop whatever the block: the very same numbers
    np.testing.assert_array_equal(stream(engine, x, 97), ref)


def test_the_flush_completes_an_aligned_stream_of_the_input_length(engine, tiny):
    x = tone_mix(0.5, seed=3)
    body = stream(engine, x, 700)
    tail = engine.flush()
    lat = engine.latency_samples
    assert tail.shape == (4, 2, lat)
    aligned = np.concatenate([body, tail], axis=-1)[..., lat:]
    assert aligned.shape == (4, 2, x.shape[-1])
    padded = np.concatenate([x, np.zeros((2, lat + 1024), np.float32)], axis=-1)
    want = causal_reference(tiny[0], padded)[..., :x.shape[-1]]
    assert snr_db(aligned, want) > 100


def test_no_array_is_allocated_per_block(tiny):
    runner = load_onnx_runner(tiny[1], threads=1)
    engine = StreamEngine(open_stream_step(runner))
    x = tone_mix(0.5)
    small, big = x[:, :256], x[:, :16384]
    out_small, out_big = np.empty((4, 2, 256), np.float32), np.empty((4, 2, 16384), np.float32)
    for _ in range(20):  # warm-up: ONNX Runtime's arena, numpy's caches
        engine.process(small, out_small)
    arrays = {name: value for name, value in vars(engine).items() if isinstance(value, np.ndarray)}
    arrays.update({f"step{i}": a for i, a in enumerate(engine.step.buffers())})
    ids = {name: (id(a), a.ctypes.data) for name, a in arrays.items()}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(400):  # 800 frames
            engine.process(small, out_small)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        engine.process(big, out_big)  # 128 frames in one call
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert grown < 2048, grown  # nothing kept per block (a few cached ints, not arrays)
    # transient: numpy's FFT and ufunc scratch (tens of kB, whatever the block); an array the size of
    # the block (an output, a copy of the input: >= 128 kB here) would show
    assert peak < 64 * 1024, peak
    assert {name: (id(a), a.ctypes.data) for name, a in arrays.items()} == ids


def test_a_hop_that_does_not_divide_the_window_is_refused():
    with pytest.raises(ConfigError, match="must divide stft.n_fft"):
        StreamEngine(PassThrough(shipped_stft(["stft.hop_length=500"])))
    with pytest.raises(ConfigError, match="n_fft / hop_length >= 2"):
        StreamEngine(PassThrough(shipped_stft(["stft.hop_length=2048"])))
