"""Margin segmenting and started inputs: an input started early (``Engine.start_input``) separates to
the same numbers, ``on_last`` comes just before the last segment is finished, and an input started
but never read lets go of its network call and its source."""
import threading

import numpy as np
import pytest
from conftest import CONFIGS

from stemsplit.config import load_config
from stemsplit.separation.engine import Engine
from stemsplit.separation.margin import StartedInput, segments
from stemsplit.settings import EngineSettings


class HalfMask:
    """A numpy NetworkRunner whose masks are 0.5 everywhere; it logs every call (and can hold one back)."""

    spectral = True

    def __init__(self, config):
        self.config = config
        self.log = []
        self.gate = threading.Event()
        self.gate.set()

    def context_frames(self):
        return None

    def stem_magnitudes(self, mag):
        self.gate.wait(5)
        self.log.append(("network", mag.shape[-1]))
        return np.repeat(mag[:, None], len(self.config.stems), axis=1) * np.float32(0.5)

    def stem_waveforms(self, wav):
        raise AssertionError("a spectral runner is never asked for waveforms")


@pytest.fixture
def runner():
    return HalfMask(load_config(CONFIGS / "lstm.yaml"))


def _blocks(x, step=20000):
    return (x[:, i:i + step] for i in range(0, x.shape[-1], step))


def _song(seconds, seed=0):
    return (np.random.default_rng(seed).standard_normal((2, int(44100 * seconds))) * 0.1).astype(np.float32)


def test_segments_cover_the_input_with_their_overlap():
    x = np.arange(2 * 1000, dtype=np.float32).reshape(2, 1000)
    got = list(segments(_blocks(x, 70), channels=2, segment=300, overlap=100))
    assert [(c.shape[-1], first, last) for c, first, last in got] == [
        (300, True, False), (300, False, False), (300, False, False), (300, False, False), (200, False, True)]
    for i, (chunk, _first, _last) in enumerate(got):
        np.testing.assert_array_equal(chunk, x[:, 200 * i: 200 * i + 300])


@pytest.mark.parametrize("seconds", [0.7, 4.0])  # one segment, several
def test_a_started_input_separates_to_the_same_numbers(runner, seconds):
    engine = Engine(runner, EngineSettings(segment_seconds=1.5, overlap=0.2))
    x = _song(seconds)
    plain = np.concatenate(list(engine.stream(_blocks(x))), axis=-1)
    started = engine.start_input(_blocks(x))
    assert isinstance(started, StartedInput) and len(started.ahead) == 1  # its first segment is in the network
    again = np.concatenate(list(engine.stream(started)), axis=-1)
    np.testing.assert_array_equal(again, plain)
    assert plain.shape == (4, 2, x.shape[-1])


def test_on_last_comes_once_just_before_the_last_segment_is_finished(runner):
    engine = Engine(runner, EngineSettings(segment_seconds=1.5, overlap=0.2))
    x = _song(4.0)
    events = []
    outputs = []
    for out in engine.stream(_blocks(x), on_segment=lambda done: events.append(("segment", done)),
                             on_last=lambda: events.append(("last",))):
        outputs.append(out.shape[-1])
    n = engine.num_segments(x.shape[-1])
    assert [e[0] for e in events] == ["segment"] * (n - 1) + ["last", "segment"]
    assert events[-1] == ("segment", x.shape[-1])


def test_the_next_input_queues_behind_the_last_segment_while_it_is_finished(runner):
    """What a batch does between files: the next file's first segment goes to the network before
    this thread finishes the current file's last one."""
    engine = Engine(runner, EngineSettings(segment_seconds=1.5, overlap=0.2))
    first, second = _song(1.0, seed=1), _song(1.0, seed=2)
    nxt = {}

    def start_next():
        runner.log.append(("start next",))
        nxt["input"] = engine.start_input(_blocks(second))

    a = np.concatenate(list(engine.stream(_blocks(first), on_last=start_next)), axis=-1)
    runner.log.append(("first done",))
    b = np.concatenate(list(engine.stream(nxt["input"])), axis=-1)
    order = [e[0] for e in runner.log]
    assert order.index("start next") < order.index("first done")
    assert order.count("network") == 2
    np.testing.assert_array_equal(b, np.concatenate(list(engine.stream(_blocks(second))), axis=-1))
    np.testing.assert_array_equal(a, np.concatenate(list(engine.stream(_blocks(first))), axis=-1))


def test_closing_a_started_input_cancels_its_call_and_closes_its_source(runner):
    engine = Engine(runner, EngineSettings(segment_seconds=1.5, overlap=0.2))
    runner.gate.clear()  # the network is busy with the first input...
    busy = engine.start_input(_blocks(_song(1.0)))
    closed = []

    def source():
        try:
            yield from _blocks(_song(3.0, seed=4))
        finally:
            closed.append(True)

    queued = engine.start_input(source())
    job = queued.ahead[0][3][0]
    queued.close()  # ... so the second one's call is still queued: it is cancelled
    assert job.result.cancelled() and closed == [True] and not queued.ahead
    runner.gate.set()
    busy.ahead[0][3][0].result.result(timeout=5)  # the running call ends; the cancelled one never starts
    busy.close()
    frames = 44100 // engine.config.stft.hop_length + 1
    assert [e for e in runner.log if e[0] == "network"] == [("network", frames)]
