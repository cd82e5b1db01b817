"""Live separation through a fake sound card (no hardware, no PortAudio here): in time, the stem
plays exactly as the engine computes it; a block that misses its deadline plays the mix, aligned,
is counted, and the stream goes on; a worker a whole ring behind drops blocks but keeps the
timeline. What this cannot test: PortAudio itself (SoundDeviceBackend opening a real device)."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from test_cli_stream import song_signal
from test_onnx_stream import causal_model

from stemsplit.errors import StemsplitError
from stemsplit.pipelines.stream import StreamRequest, stream_live
from stemsplit.separation.live import LiveAudioError, LiveLoop
from stemsplit.separation.stream_sources import StopFlag
from stemsplit.separation.stream_step import open_stream_step
from stemsplit.separation.streaming import StreamEngine
from stemsplit.separation.torch_runner import TorchRunner

BLOCK = 256


class FakeCard:
    """An ``AudioBackend`` that plays ``mic`` (C, n) into the callback block by block, as fast as
    the callback returns, and keeps what it was given to play."""

    def __init__(self, mic: np.ndarray | None = None, stop_after: int | None = None):
        self.mic, self.stop_after, self.played, self.calls = mic, stop_after, [], 0

    def run(self, callback, *, sample_rate, block, in_channels, out_channels, idle):
        at = 0
        while idle() and (self.stop_after is None or self.calls < self.stop_after):
            indata = None
            if in_channels:
                if at >= self.mic.shape[1]:
                    return
                chunk = self.mic[:, at:at + block]
                indata = np.zeros((block, in_channels), np.float32)
                indata[:chunk.shape[1]] = chunk.T
                at += block
            outdata = np.full((block, out_channels), np.nan, np.float32) if out_channels else None
            self.calls += 1
            if not callback(indata, outdata):
                return
            if outdata is not None:
                self.played.append(outdata.T.copy())


class SlowStep:
    """A stream step that takes ``pause`` seconds on the frames in ``slow``."""

    def __init__(self, step, slow: set[int], pause: float):
        self.step, self.slow, self.pause, self.frames = step, slow, pause, 0
        self.config, self.output_kind, self.lookahead_frames = step.config, step.output_kind, step.lookahead_frames
        self.mag, self.out = step.mag, step.out

    def run(self) -> None:
        if self.frames in self.slow:
            time.sleep(self.pause)
        self.frames += 1
        self.step.run()

    def reset(self) -> None:
        self.step.reset()


@pytest.fixture(scope="module")
def loaded():
    return causal_model()


def engine_of(loaded, slow: set[int] = frozenset(), pause: float = 0.0) -> StreamEngine:
    step = open_stream_step(TorchRunner(loaded.model, loaded.config))
    return StreamEngine(SlowStep(step, set(slow), pause) if slow else step)


def reference(loaded, x: np.ndarray) -> np.ndarray:
    """(S, C, n): the engine's own output for the mic signal, in blocks of BLOCK."""
    engine = engine_of(loaded)
    return np.concatenate([engine.process(x[:, i:i + BLOCK]) for i in range(0, x.shape[1], BLOCK)], axis=-1)


def delayed(x: np.ndarray, lat: int) -> np.ndarray:
    return np.concatenate([np.zeros((x.shape[0], lat), np.float32), x[:, :-lat]], axis=-1)


def test_in_time_the_stem_plays_as_the_engine_computes_it_and_no_vocals_is_the_mix_minus_it(loaded):
    x = song_signal(0.5)[:, :40 * BLOCK]
    want = reference(loaded, x)
    for play, expect in (("drums", want[1]), ("no_vocals", delayed(x, 511) - want[0])):
        loop = LiveLoop(engine_of(loaded), BLOCK, play=play)
        loop.deadline = 5.0  # a loaded test machine must not turn this into a miss test
        card = FakeCard(x)
        try:
            loop.run(card, in_channels=2, out_channels=2)
        finally:
            loop.close()
        assert loop.misses == 0 and loop.dropped == 0 and loop.blocks == 40
        np.testing.assert_allclose(np.concatenate(card.played, axis=-1), expect, rtol=0, atol=1e-6)


def test_a_late_block_plays_the_aligned_mix_is_counted_and_the_stream_goes_on(loaded):
    x = song_signal(0.5)[:, :40 * BLOCK]
    want = reference(loaded, x)
    late = 12  # frame k ends at sample 128k + 127: block 12 (samples 3072-3327) completes frames 24 and 25
    loop = LiveLoop(engine_of(loaded, slow={25}, pause=0.6), BLOCK, play="vocals")
    loop.deadline = 0.3
    written = []
    loop.on_stems = lambda stems: written.append(stems.copy())
    card = FakeCard(x)
    try:
        loop.run(card, in_channels=2, out_channels=2)
    finally:
        loop.close()
    played = np.stack(card.played)                                     # (blocks, C, B)
    assert loop.blocks == 40 and len(played) == 40                       # the stream never stopped
    assert loop.misses >= 1 and loop.dropped == 0
    mix = delayed(x, 511).reshape(2, 40, BLOCK).transpose(1, 0, 2)
    stem = want[0].reshape(2, 40, BLOCK).transpose(1, 0, 2)
    np.testing.assert_allclose(played[late], mix[late], rtol=0, atol=1e-6)  # the mix, in line with the stems
    missed = [i for i in range(40) if not np.allclose(played[i], stem[i], rtol=0, atol=1e-6)]
    assert late in missed and len(missed) == loop.misses and missed[-1] < 20  # and then separated again
    np.testing.assert_allclose(played[30:], stem[30:], rtol=0, atol=1e-6)
    # the worker finished the late block too: what it hands on (the files) is whole
    np.testing.assert_allclose(np.concatenate(written, axis=-1), want, rtol=0, atol=1e-6)


def test_a_worker_a_ring_behind_drops_blocks_but_keeps_the_timeline(loaded):
    x = song_signal(0.5)[:, :40 * BLOCK]
    loop = LiveLoop(engine_of(loaded, slow={5}, pause=0.5), BLOCK, play="vocals", slots=2)
    loop.deadline = 0.01
    written = []
    loop.on_stems = lambda stems: written.append(stems.shape[-1])
    card = FakeCard(x)
    try:
        loop.run(card, in_channels=2, out_channels=2)
    finally:
        loop.close()
    assert loop.blocks == 40 and loop.dropped >= 1 and loop.misses >= loop.dropped
    assert sum(written) == 40 * BLOCK  # dropped blocks are fed as silence: the files keep the length


def test_live_capture_writes_aligned_files_and_stops_cleanly_on_request(loaded, tmp_path, monkeypatch):
    import stemsplit.pipelines.stream as pipeline

    x = song_signal(1.0)
    engine = StreamEngine(open_stream_step(TorchRunner(loaded.model, loaded.config)))
    monkeypatch.setattr(pipeline, "open_stream_engine", lambda *a, **k: (_Resolved(), engine))
    stop = StopFlag()
    card = FakeCard(x)
    calls = []

    def status(loop):
        calls.append(loop.blocks)
        if loop.blocks >= 30:
            stop.request(15)

    stats = stream_live(StreamRequest(input=None, out_dir=tmp_path / "out", block=BLOCK, bits=32),
                        card, stop, on_status=status).as_dict()
    import soundfile as sf

    vocals, rate = sf.read(tmp_path / "out" / "vocals.wav", dtype="float32", always_2d=True)
    assert rate == 44100 and stats["stopped_by_signal"] == 15 and calls
    assert vocals.shape == (stats["blocks"] * BLOCK, 2)  # every captured sample, aligned: L dropped, L flushed
    n = vocals.shape[0]
    want = reference(loaded, x[:, :n])
    np.testing.assert_allclose(vocals.T[:, :n - 511], want[0][:, 511:n], rtol=0, atol=1e-6)
    assert stats["blocks"] >= 30 and stats["latency_samples"] == 511


def test_a_file_plays_live_with_the_files_of_a_stream(loaded, tmp_path, monkeypatch):
    import soundfile as sf

    import stemsplit.pipelines.stream as pipeline
    from stemsplit.audio.io import write_audio

    song = write_audio(tmp_path / "song.wav", song_signal(1.0), 44100, "FLOAT")
    monkeypatch.setattr(pipeline, "open_stream_engine", lambda *a, **k: (_Resolved(), engine_of(loaded)))
    card = FakeCard()
    stats = stream_live(StreamRequest(input=str(song), out_dir=tmp_path / "live", block=BLOCK, bits=32, play="bass"),
                        card).as_dict()
    pipeline.stream_to_files(StreamRequest(input=str(song), out_dir=tmp_path / "files", block=BLOCK, bits=32))
    assert stats["blocks"] == -(-44100 // BLOCK)
    # the fake card calls back as fast as it can, not in real time: where the file reader falls behind
    # it, the block plays silence and counts as a miss (a real card's pace leaves the reader time)
    assert stats["blocks"] <= len(card.played) <= stats["blocks"] + stats["deadline_misses"]
    for stem in ("vocals", "bass"):
        live, _ = sf.read(tmp_path / "live" / f"{stem}.wav", dtype="float32")
        files, _ = sf.read(tmp_path / "files" / f"{stem}.wav", dtype="float32")
        np.testing.assert_allclose(live[:len(files)], files, rtol=0, atol=1e-6)  # live pads its last block


def test_play_must_name_a_stem_and_portaudio_missing_is_one_line(loaded, monkeypatch):
    with pytest.raises(LiveAudioError, match="--play 'guitar': not a stem"):
        LiveLoop(engine_of(loaded), BLOCK, play="guitar")
    from stemsplit.separation.live_sounddevice import load_sounddevice

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(StemsplitError, match=r'sounddevice package: pip install "\.\[stream\]"'):
        load_sounddevice()


class _Resolved:
    name, runtime = "tiny", "torch"
