"""Folder datasets: discovery, every check, splits, resampling, extra stems and idempotent re-runs."""
from __future__ import annotations

import numpy as np
import pytest

from stemsplit.audio.io import write_audio
from stemsplit.data.cache import DataError, PreparedDataset
from stemsplit.data.checks import CheckOptions
from stemsplit.pipelines.prepare import PrepareOptions, prepare_folder

STEMS = ["vocals", "drums", "bass", "other"]
SR = 8000


def stem_audio(seed: int, frames: int = SR, channels: int = 2, level: float = 0.1,
               sr: int = SR) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / sr
    out = {}
    for i, s in enumerate(STEMS):
        tone = np.sin(2 * np.pi * (110 * (i + 1) + seed) * t) + 0.1 * rng.standard_normal(frames)
        out[s] = (level * np.stack([tone] * channels)).astype(np.float32)
    return out


def write_track(folder, stems: dict[str, np.ndarray], sr: int = SR, mixture=None, ext: str = "wav"):
    subtype = "FLOAT" if ext == "wav" else "PCM_24"
    for name, audio in stems.items():
        write_audio(folder / f"{name}.{ext}", audio, sr, subtype=subtype)
    if mixture is not None:
        write_audio(folder / f"mixture.{ext}", mixture, sr, subtype=subtype)


def options(tmp_path, **kw) -> PrepareOptions:
    return PrepareOptions(out=kw.pop("out", tmp_path / "out"), sample_rate=kw.pop("sample_rate", SR), **kw)


@pytest.fixture
def messy(tmp_path):
    """A folder dataset with three good tracks and one of each kind of bad track."""
    root = tmp_path / "stems"
    for i in range(3):
        stems = stem_audio(i)
        write_track(root / f"good{i}", stems, mixture=sum(stems.values()) if i == 0 else None)
    write_track(root / "missing_bass", {k: v for k, v in stem_audio(3).items() if k != "bass"})
    short = stem_audio(4)
    short["bass"] = short["bass"][:, : SR // 2]
    write_track(root / "bad_length", short)
    write_track(root / "bad_rate", {k: v for k, v in stem_audio(5).items() if k != "bass"})
    write_audio(root / "bad_rate" / "bass.wav", stem_audio(5)["bass"], 16000)
    quiet = stem_audio(6)
    quiet["vocals"] *= 0
    write_track(root / "silent_vocals", quiet)
    wrong = stem_audio(7)
    write_track(root / "bad_mix", wrong, mixture=0.9 * sum(wrong.values()))
    loud = stem_audio(8)
    loud["vocals"] = np.clip(loud["vocals"] * 15, -1, 1)  # a stem limited at full scale
    write_track(root / "clipped", loud)
    write_track(root / "corrupt", stem_audio(9))
    (root / "corrupt" / "vocals.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    (root / "notes").mkdir()  # a folder with no audio is not a track
    (root / "notes" / "readme.txt").write_text("x")
    return root


def test_checks_report_and_leave_out_bad_tracks(tmp_path, messy):
    report = prepare_folder(messy, STEMS, options(tmp_path), valid_fraction=0.0)
    status = {c.name: c for c in report.checks}
    assert set(status) == {"good0", "good1", "good2", "missing_bass", "bad_length", "bad_rate",
                           "silent_vocals", "bad_mix", "clipped", "corrupt"}
    for name in ("good0", "good1", "good2"):
        assert status[name].status == "ok", status[name].summary()
    assert status["good0"].residual_db < -60 and status["good1"].residual_db is None
    assert "missing stems: bass" in status["missing_bass"].summary()
    assert "lengths differ" in status["bad_length"].summary()
    assert "sample rates differ: " in status["bad_rate"].summary() and "16000" in status["bad_rate"].summary()
    assert status["silent_vocals"].status == "warn" and "silent: vocals" in status["silent_vocals"].summary()
    assert status["bad_mix"].status == "warn" and "not the sum of its stems" in status["bad_mix"].summary()
    assert -19.5 < status["bad_mix"].residual_db < -18.5  # 0.1 of the sum missing: 20 log10(0.1 / 0.9)
    assert status["clipped"].status == "warn" and "clipped samples: vocals" in status["clipped"].summary()
    corrupt = status["corrupt"].summary()
    assert "unreadable" in corrupt and str(messy / "corrupt" / "vocals.wav") in corrupt
    assert sorted(c.name for c in report.failed) == ["bad_length", "bad_rate", "corrupt", "missing_bass"]

    ds = PreparedDataset(tmp_path / "out")
    assert ds.tracks("train") == ["bad_mix", "clipped", "good0", "good1", "good2", "silent_vocals"]
    np.testing.assert_allclose(ds.load_track("good1")["drums"], stem_audio(1)["drums"], atol=2e-3)

    strict = prepare_folder(messy, STEMS, options(tmp_path, checks=CheckOptions(strict=True)), valid_fraction=0)
    assert {"bad_mix", "clipped", "silent_vocals"} <= {c.name for c in strict.failed}


def test_valid_fraction_split_layout_and_extra_stems(tmp_path):
    root = tmp_path / "flat"
    for i in range(8):
        stems = stem_audio(i, frames=SR // 2)
        stems["piano"] = stems["other"] * 0.5
        write_track(root / f"t{i}", stems)
    report = prepare_folder(root, STEMS + ["piano"], options(tmp_path), valid_fraction=0.25, seed=1)
    assert report.splits == {"train": 6, "valid": 2}
    ds = PreparedDataset(tmp_path / "out")
    assert ds.stems == STEMS + ["piano"] and "piano" in ds.load_track("t0")

    split_root = tmp_path / "hq"
    for split, names in {"train": ["a", "b", "c"], "test": ["d"]}.items():
        for n in names:
            write_track(split_root / split / n, stem_audio(ord(n), frames=SR // 2))
    report = prepare_folder(split_root, STEMS, options(tmp_path, out=tmp_path / "out2"), valid_fraction=0.3)
    assert report.splits == {"test": 1, "train": 2, "valid": 1}
    assert PreparedDataset(tmp_path / "out2").tracks("test") == ["d"]


def test_resampling_and_mono_to_stereo(tmp_path):
    root = tmp_path / "mono"
    write_track(root / "m", stem_audio(0, frames=16000, channels=1, sr=16000), sr=16000, ext="flac")
    prepare_folder(root, STEMS, options(tmp_path, sample_rate=SR), valid_fraction=0)
    ds = PreparedDataset(tmp_path / "out")
    track = ds.load_track("m")
    assert ds.sample_rate == SR and track["vocals"].shape == (2, 8000)
    np.testing.assert_allclose(track["vocals"][0], track["vocals"][1])
    spectrum = np.abs(np.fft.rfft(track["vocals"][0]))
    assert abs(np.argmax(spectrum) * SR / 8000 - 110) <= 1  # the 110 Hz tone survives resampling


def test_rerun_is_idempotent_and_picks_up_changes(tmp_path):
    root = tmp_path / "stems"
    for i in range(3):
        write_track(root / f"t{i}", stem_audio(i, frames=SR // 2))
    first = prepare_folder(root, STEMS, options(tmp_path), valid_fraction=0)
    assert (first.added, first.reused) == (3, 0)
    entries = sorted(p.name for p in (tmp_path / "out" / "tracks").iterdir())
    again = prepare_folder(root, STEMS, options(tmp_path), valid_fraction=0)
    assert (again.added, again.reused) == (0, 3)
    assert sorted(p.name for p in (tmp_path / "out" / "tracks").iterdir()) == entries
    write_audio(root / "t1" / "bass.wav", stem_audio(9, frames=SR // 2)["bass"], SR)
    changed = prepare_folder(root, STEMS, options(tmp_path), valid_fraction=0)
    assert (changed.added, changed.reused) == (1, 2)
    ds = PreparedDataset(tmp_path / "out")
    np.testing.assert_allclose(ds.load_track("t1")["bass"], stem_audio(9, frames=SR // 2)["bass"], atol=2e-3)


def test_bad_roots_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        prepare_folder(tmp_path / "nope", STEMS, options(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no track folders with audio found"):
        prepare_folder(tmp_path / "empty", STEMS, options(tmp_path))
    write_track(tmp_path / "allbad" / "x", {"vocals": stem_audio(0)["vocals"]})
    with pytest.raises(DataError, match="none of the 1 tracks could be prepared.*missing stems"):
        prepare_folder(tmp_path / "allbad", STEMS, options(tmp_path))
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_a_run_interrupted_half_way_resumes(tmp_path, monkeypatch):
    from stemsplit.pipelines import prepare as pipeline

    root = tmp_path / "stems"
    for i in range(4):
        write_track(root / f"t{i}", stem_audio(i, frames=SR // 2))
    real_conform, calls = pipeline.conform, []

    def killed_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_conform(*args, **kwargs)

    monkeypatch.setattr(pipeline, "conform", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_folder(root, STEMS, options(tmp_path), valid_fraction=0)
    monkeypatch.undo()
    assert not (tmp_path / "out" / "dataset.json").exists()
    resumed = prepare_folder(root, STEMS, options(tmp_path), valid_fraction=0)
    assert (resumed.added, resumed.reused) == (2, 2)
    assert PreparedDataset(tmp_path / "out").tracks("train") == ["t0", "t1", "t2", "t3"]


def test_named_valid_tracks_are_held_out_and_the_licence_is_recorded(tmp_path):
    root = tmp_path / "songs"
    for i in range(4):
        write_track(root / f"s{i}", stem_audio(i, frames=SR // 2))
    terms = "CC0 1.0 for s0-s2; CC BY-NC-SA for s3"
    report = prepare_folder(root, STEMS, options(tmp_path, licence=terms), valid_fraction=0.5,
                            valid_tracks=("s1", "s3"))
    assert report.splits == {"train": 2, "valid": 2}  # the named ones, not a draw of half
    ds = PreparedDataset(tmp_path / "out")
    assert ds.tracks("valid") == ["s1", "s3"] and ds.tracks("train") == ["s0", "s2"]
    assert ds.meta["licence"] == terms
    with pytest.raises(DataError, match="--valid-tracks: no track folder named 's9'; the tracks are: s0, s1"):
        prepare_folder(root, STEMS, options(tmp_path, out=tmp_path / "o2"), valid_tracks=("s1", "s9"))
