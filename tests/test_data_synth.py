"""The multitrack generator: determinism, lengths, musical structure, and the written corpus."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from stemsplit.data.cache import PreparedDataset
from stemsplit.data.dataset import ExcerptDataset
from stemsplit.data.synth import SYNTH_STEMS, generate_song
from stemsplit.data.synth.plan import MAJOR, MINOR
from stemsplit.pipelines.prepare import PrepareOptions, prepare_synth

SR = 22050


@pytest.fixture(scope="module")
def song():
    return generate_song(seed=3, index=1, seconds=12.0, sample_rate=SR)


def test_deterministic_stems_that_sum_to_the_mixture(song):
    again = generate_song(seed=3, index=1, seconds=12.0, sample_rate=SR)
    other = generate_song(seed=3, index=2, seconds=12.0, sample_rate=SR)
    assert list(song.stems) == SYNTH_STEMS
    for stem in SYNTH_STEMS:
        assert song.stems[stem].shape == (2, 12 * SR) and song.stems[stem].dtype == np.float32
        np.testing.assert_array_equal(song.stems[stem], again.stems[stem])
        level_db = 10 * np.log10(np.mean(song.stems[stem] ** 2))
        assert -45 < level_db < -5, stem  # every part is audible, none is overpowering
    assert not np.array_equal(song.stems["vocals"], other.stems["vocals"])
    np.testing.assert_allclose(song.mixture, sum(song.stems.values()), atol=1e-6)
    assert np.abs(song.mixture).max() <= 0.9 + 1e-6  # no clipping
    assert not np.array_equal(song.stems["drums"][0], song.stems["drums"][1])  # panned, stereo reverb


@pytest.mark.parametrize("seconds", [0.5, 1.37])
def test_length_follows_seconds_and_rate_and_the_score_does_not_depend_on_the_rate(seconds):
    """Odd lengths come out to the sample; a seed's score (tempo, key, drums, room) is the same
    at every rate. (Generation speed is measured in scripts/bench_data.py, not asserted here.)"""
    score = {}
    for sr in (16000, 22050, 44100):
        song = generate_song(seed=1, index=0, seconds=seconds, sample_rate=sr)
        n = round(seconds * sr)
        assert song.mixture.shape == (2, n) and song.mixture.dtype == np.float32
        for stem in SYNTH_STEMS:
            assert song.stems[stem].shape == (2, n) and np.isfinite(song.stems[stem]).all(), (stem, sr)
        assert 0.3 < np.abs(song.mixture).max() <= 0.9 + 1e-6, sr  # normalised, never clipped
        score[sr] = {k: song.info[k] for k in ("tempo", "key", "minor", "drums", "reverb_rt60")}
    assert score[16000] == score[22050] == score[44100]


def _onset_envelope(audio: np.ndarray, hop: int) -> np.ndarray:
    frames = audio[: audio.size // hop * hop].reshape(-1, hop)
    energy = np.log1p(100 * np.sqrt((frames ** 2).mean(1)))
    return np.maximum(np.diff(energy), 0)


def test_drums_follow_the_tempo(song):
    hop = 256
    onsets = _onset_envelope(song.stems["drums"].mean(0), hop)
    onsets = onsets - onsets.mean()
    corr = np.correlate(onsets, onsets, mode="full")[onsets.size - 1:]
    beat_frames = 60.0 / song.info["tempo"] * SR / hop
    lags = np.arange(corr.size)
    # the strongest periodicity between 0.25 and 2 beats sits on a multiple of an eighth note
    window = (lags > 0.22 * beat_frames) & (lags < 2.1 * beat_frames)
    best = lags[window][np.argmax(corr[window])]
    eighths = best / (beat_frames / 2)
    assert abs(eighths - round(eighths)) < 0.15, (best, beat_frames)


def _pitch_classes(audio: np.ndarray, low: float, high: float, frame: int = 8192) -> list[int]:
    """Pitch class of the strongest peak in [low, high] Hz for each loud frame."""
    classes = []
    mono = audio.mean(0)
    window = np.hanning(frame)
    rms = np.sqrt(np.mean(mono ** 2))
    for start in range(0, mono.size - frame, frame // 2):
        piece = mono[start:start + frame]
        if np.sqrt(np.mean(piece ** 2)) < 0.5 * rms:
            continue
        spec = np.abs(np.fft.rfft(piece * window))
        freqs = np.fft.rfftfreq(frame, 1 / SR)
        band = (freqs >= low) & (freqs <= high)
        f = freqs[band][np.argmax(spec[band])]
        classes.append(int(round(12 * np.log2(f / 440.0) + 69)) % 12)
    return classes


def test_bass_and_vocals_stay_in_key(song):
    scale = MINOR if song.info["minor"] else MAJOR
    in_key = {(song.info["key"] + s) % 12 for s in scale}
    for stem, low, high in (("bass", 30, 250), ("vocals", 90, 1000)):
        classes = _pitch_classes(song.stems[stem], low, high)
        assert len(classes) >= 5, stem
        share = np.mean([c in in_key for c in classes])
        assert share >= 0.8, (stem, share, classes)


def test_vocals_are_a_voice_not_a_sine(song):
    vocals = song.stems["vocals"].mean(0)
    frame = 4096
    loud = max(range(0, vocals.size - frame, frame), key=lambda i: np.sum(vocals[i:i + frame] ** 2))
    spec = np.abs(np.fft.rfft(vocals[loud:loud + frame] * np.hanning(frame)))
    peaks = (spec[1:-1] > spec[:-2]) & (spec[1:-1] > spec[2:]) & (spec[1:-1] > spec.max() * 0.01)
    assert peaks.sum() >= 6  # a rich harmonic series shaped by formants
    hop = SR // 20
    rms = np.sqrt((vocals[: vocals.size // hop * hop].reshape(-1, hop) ** 2).mean(1))
    loud = np.flatnonzero(rms > 0.3 * rms.max())
    between = rms[loud[0]:loud[-1]]
    assert np.sum(between < 0.05 * rms.max()) >= 10  # rests between phrases (half a second or more)


def test_corpus_layout_splits_and_reuse(tmp_path):
    out = tmp_path / "synth"
    opts = PrepareOptions(out=out, sample_rate=16000)
    report = prepare_synth(out, tracks=3, seconds=2.0, options=opts, seed=5, valid_fraction=0.34)
    assert report.splits == {"train": 2, "valid": 1} and report.extra["generated"] == 3
    folder = out / "audio" / "valid" / "synth-5-0002"
    for part in ["mixture", *SYNTH_STEMS]:
        info = sf.info(folder / f"{part}.wav")
        assert info.samplerate == 16000 and info.channels == 2 and info.frames == 32000
    assert json.loads((folder / "synth.json").read_text())["params"]["seed"] == 5
    ds = PreparedDataset(out)
    assert ds.tracks("train") == ["synth-5-0000", "synth-5-0001"]
    mix, src = ExcerptDataset([ds], "train", SYNTH_STEMS, 16000, 2, None, seed=0)[1]
    assert src.shape == (4, 2, 16000)

    again = prepare_synth(out, tracks=3, seconds=2.0, options=opts, seed=5, valid_fraction=0.34)
    assert again.extra["generated"] == 0 and again.reused == 3
    fewer = prepare_synth(out, tracks=2, seconds=2.0, options=opts, seed=5, valid_fraction=0.5)
    assert fewer.extra["generated"] == 1  # song 1 moved to the valid split
    assert fewer.splits == {"train": 1, "valid": 1}
    assert not (out / "audio" / "valid" / "synth-5-0002").exists()
