"""A batch keeps the network busy between files: the next file is started while the current one's
last segment is finished (``Separator.write_stems(upcoming=...)``), with the same stems as one by
one, and a next file that cannot be read, or is skipped, changes nothing for the others."""
import numpy as np
import pytest
import soundfile as sf
from conftest import tone_mix, write_tiny_checkpoint

from stemsplit.audio.io import AudioError, write_audio
from stemsplit.audio.stem_writer import ClipSafeWriter
from stemsplit.pipelines.separator import Separator

STEMS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.ckpt", "lstm")


@pytest.fixture
def songs(tmp_path):
    return [write_audio(tmp_path / "in" / f"s{i}.wav", tone_mix(1.0 + 0.5 * i, seed=i), 44100) for i in range(3)]


def _targets(out, path):
    return {s: out / path.stem / f"{s}.wav" for s in STEMS}


def _separate(sep, songs, out, chain: bool):
    stems = []
    for i, path in enumerate(songs):
        upcoming = songs[i + 1] if chain and i + 1 < len(songs) else None
        result = sep.write_stems(path, _targets(out, path), STEMS, False, "PCM_16", "rescale", upcoming=upcoming)
        stems.append([sf.read(result.outputs[s], dtype="int16")[0] for s in STEMS])
    return stems


def test_a_chained_batch_gives_the_stems_of_one_file_at_a_time(ckpt, songs, tmp_path):
    sep = Separator(str(ckpt), runtime="torch", threads=1)
    alone = _separate(sep, songs, tmp_path / "alone", chain=False)
    chained = _separate(sep, songs, tmp_path / "chained", chain=True)
    assert all(np.array_equal(a, b) for fa, fb in zip(alone, chained) for a, b in zip(fa, fb))


def test_the_next_file_reaches_the_network_before_the_current_one_is_written(ckpt, songs, tmp_path, monkeypatch):
    sep = Separator(str(ckpt), runtime="torch", threads=1)
    log = []
    runner = sep.engine.runner
    network = runner.stem_magnitudes
    monkeypatch.setattr(runner, "stem_magnitudes", lambda mag: (log.append(("network", mag.shape[-1])),
                                                                network(mag))[1])
    finish = ClipSafeWriter.finish
    monkeypatch.setattr(ClipSafeWriter, "finish", lambda self: (log.append(("written", self.final.parent.name)),
                                                                finish(self))[1])
    _separate(sep, songs[:2], tmp_path / "out", chain=True)
    frames = [n for kind, n in log if kind == "network"]
    assert len(frames) == 2 and frames[0] != frames[1]  # one segment each, of different lengths
    first_written = next(i for i, e in enumerate(log) if e == ("written", "s0"))
    assert log.index(("network", frames[1])) < first_written  # s1 went to the network before s0 was written


def test_an_unreadable_next_file_fails_on_its_own_turn_with_its_own_message(ckpt, songs, tmp_path):
    sep = Separator(str(ckpt), runtime="torch", threads=1)
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    result = sep.write_stems(songs[0], _targets(tmp_path / "out", songs[0]), STEMS, False, "PCM_16", "rescale",
                             upcoming=bad)
    assert sorted(result.outputs) == sorted(STEMS)
    with pytest.raises(AudioError, match="bad.wav"):
        sep.write_stems(bad, _targets(tmp_path / "out", bad), STEMS, False, "PCM_16", "rescale")


def test_a_started_file_that_is_skipped_is_let_go(ckpt, songs, tmp_path):
    sep = Separator(str(ckpt), runtime="torch", threads=1)
    sep.write_stems(songs[0], _targets(tmp_path / "out", songs[0]), STEMS, False, "PCM_16", "rescale",
                    upcoming=songs[1])
    started = sep._started
    assert started is not None and started.path == songs[1]
    sep.write_stems(songs[2], _targets(tmp_path / "out", songs[2]), STEMS, False, "PCM_16", "rescale")
    assert sep._started is None
    assert started.stream._source.segments.gi_frame is None  # its reader was closed, not left open
    plain = Separator(str(ckpt), runtime="torch", threads=1)
    again = plain.write_stems(songs[1], _targets(tmp_path / "again", songs[1]), STEMS, False, "PCM_16", "rescale")
    assert sf.info(str(again.outputs["vocals"])).frames == sf.info(str(songs[1])).frames
