"""The prepared-dataset cache: round trip, idempotence, resume, failures that leave it whole."""
from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch

from stemsplit.data import cache as cache_mod
from stemsplit.data.cache import CacheWriter, DataError, PreparedDataset

STEMS = ["vocals", "drums", "bass", "other"]
SR = 8000


def _stems(seed: int, frames: int = SR, channels: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: (0.2 * rng.standard_normal((channels, frames))).astype(np.float32) for s in STEMS}


def _write(root, tracks: dict[str, str], seed0: int = 0, finalize: bool = True) -> CacheWriter:
    writer = CacheWriter(root, SR, STEMS, source="test")
    for i, (name, split) in enumerate(tracks.items()):
        if not writer.has_track(name, f"hash-{name}-{seed0 + i}", split):
            writer.add_track(name, split, _stems(seed0 + i), source_hash=f"hash-{name}-{seed0 + i}",
                             source=f"/src/{name}")
    if finalize:
        writer.finalize()
    return writer


def test_round_trip_metadata_and_audio(tmp_path):
    root = tmp_path / "ds"
    _write(root, {"a": "train", "b": "train", "c/slash": "valid"})
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["sample_rate"] == SR and meta["stems"] == STEMS
    assert meta["splits"] == {"train": ["a", "b"], "valid": ["c/slash"]}
    assert meta["tracks"]["a"]["length"] == SR and meta["tracks"]["a"]["source"] == "/src/a"
    assert meta["tracks"]["a"]["source_hash"] == "hash-a-0"

    ds = PreparedDataset(root)
    assert ds.tracks("train") == ["a", "b"] and ds.track_length("c/slash") == SR
    track = ds.load_track("b")
    expected = _stems(1)
    assert set(track) == {"mixture", *STEMS}
    for s in STEMS:
        assert track[s].dtype == np.float32 and track[s].shape == (2, SR)
        np.testing.assert_allclose(track[s], expected[s], atol=1e-4)  # stored as int16 with a scale per part
    np.testing.assert_allclose(track["mixture"], sum(expected.values()), atol=3e-3)
    # a partial read past the end is zero-padded
    part = ds.read("a", "drums", SR - 10, 30)
    assert part.shape == (2, 30) and np.all(part[:, 10:] == 0) and np.any(part[:, :10] != 0)


def test_given_mixture_is_stored_and_float32_is_memmapped(tmp_path):
    writer = CacheWriter(tmp_path / "ds", SR, STEMS, source="test", dtype="float32")
    stems = _stems(0)
    mixture = 0.5 * sum(stems.values())
    writer.add_track("t", "test", stems, mixture=mixture)
    writer.finalize()
    track = PreparedDataset(tmp_path / "ds").load_track("t")
    assert isinstance(track["mixture"], np.memmap)
    np.testing.assert_array_equal(np.asarray(track["mixture"]), mixture)


def test_unknown_split_and_missing_dataset_are_one_line_errors(tmp_path):
    _write(tmp_path / "ds", {"a": "train"})
    with pytest.raises(DataError, match="no split 'test'; the splits are: train"):
        PreparedDataset(tmp_path / "ds").tracks("test")
    with pytest.raises(DataError, match="dataset folder not found"):
        PreparedDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dataset.json"):
        PreparedDataset(tmp_path / "empty")
    with pytest.raises(DataError, match="no tracks were prepared"):
        CacheWriter(tmp_path / "x", SR, STEMS, "test").finalize()


def test_bad_track_input_is_rejected(tmp_path):
    writer = CacheWriter(tmp_path / "ds", SR, STEMS, "test")
    stems = _stems(0)
    with pytest.raises(DataError, match="missing \\['bass'\\]"):
        writer.add_track("t", "train", {k: v for k, v in stems.items() if k != "bass"})
    bad = dict(stems, bass=stems["bass"][:, :100])
    with pytest.raises(DataError, match="one shape"):
        writer.add_track("t", "train", bad)
    nan = dict(stems, bass=np.full_like(stems["bass"], np.nan))
    with pytest.raises(DataError, match="NaN"):
        writer.add_track("t", "train", nan)
    assert not [p for p in (tmp_path / "ds" / "tracks").iterdir()]


def test_rerun_skips_unchanged_tracks_and_replaces_changed_ones(tmp_path):
    root = tmp_path / "ds"
    _write(root, {"a": "train", "b": "train"})
    dirs_before = sorted(p.name for p in (root / "tracks").iterdir())
    writer = CacheWriter(root, SR, STEMS, source="test")
    assert writer.has_track("a", "hash-a-0", "train")
    assert not writer.has_track("b", "hash-b-changed", "train")
    assert not writer.has_track("a", "")  # no hash: never trusted
    writer.add_track("b", "valid", _stems(7), source_hash="hash-b-changed")
    writer.finalize()
    ds = PreparedDataset(root)
    assert ds.splits == {"train": ["a"], "valid": ["b"]}
    np.testing.assert_allclose(ds.load_track("b")["vocals"], _stems(7)["vocals"], atol=1e-3)
    dirs_after = sorted(p.name for p in (root / "tracks").iterdir())
    assert len(dirs_after) == 2 and dirs_after[0] == dirs_before[0] and dirs_after[1] != dirs_before[1]


def test_resume_after_a_run_killed_before_finalize(tmp_path):
    root = tmp_path / "ds"
    _write(root, {"a": "train", "b": "train"}, finalize=False)  # "killed": no dataset.json
    (root / "tracks" / ".tmp-half-written").mkdir()  # what a kill mid-entry leaves
    with pytest.raises(DataError):
        PreparedDataset(root)
    calls = []
    writer = CacheWriter(root, SR, STEMS, source="test")
    for i, name in enumerate(["a", "b", "c"]):
        if not writer.has_track(name, f"hash-{name}-{i}", "train"):
            calls.append(name)
            writer.add_track(name, "train", _stems(i), source_hash=f"hash-{name}-{i}")
    writer.finalize()
    assert calls == ["c"]
    assert PreparedDataset(root).tracks("train") == ["a", "b", "c"]
    assert not (root / "tracks" / ".tmp-half-written").exists()


def test_disk_full_leaves_the_previous_cache_intact(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    _write(root, {"a": "train", "b": "valid"})
    before = (root / "dataset.json").read_text()
    old = PreparedDataset(root).load_track("a")["vocals"].copy()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.np, "save", full_disk)
    writer = CacheWriter(root, SR, STEMS, source="test")
    with pytest.raises(DataError, match="No space left on device.*previously prepared cache is unchanged"):
        writer.add_track("a", "train", _stems(99), source_hash="new-hash")
    monkeypatch.undo()
    assert (root / "dataset.json").read_text() == before
    ds = PreparedDataset(root)
    np.testing.assert_array_equal(ds.load_track("a")["vocals"], old)
    assert not [p for p in (root / "tracks").iterdir() if p.name.startswith(".tmp")]

    # a failure while writing dataset.json itself also keeps the old one
    writer = CacheWriter(root, SR, STEMS, source="test")
    writer.add_track("z", "train", _stems(5), source_hash="z")
    monkeypatch.setattr(cache_mod, "write_json_atomic", full_disk)
    with pytest.raises(DataError, match="could not write dataset.json"):
        writer.finalize()
    assert (root / "dataset.json").read_text() == before
    assert PreparedDataset(root).tracks("train") == ["a"]


def test_magnitude_stats_match_a_direct_stft(tmp_path):
    root = tmp_path / "ds"
    _write(root, {"a": "train", "b": "train", "v": "valid"})
    ds = PreparedDataset(root)
    mixtures = [torch.from_numpy(ds.load_track(n)["mixture"].copy()) for n in ("a", "b")]
    window = torch.hann_window(1024, periodic=True)
    logmag = torch.cat([torch.log1p(torch.stft(m, 1024, 512, window=window, center=True,
                                               return_complex=True).abs()) for m in mixtures], dim=-1)
    want_mean = logmag.mean(dim=(0, 2)).numpy()
    want_std = logmag.double().std(dim=(0, 2), unbiased=False).numpy()
    mean, std = ds.magnitude_stats(1024, 512)
    assert mean.shape == (513,) and std.shape == (513,)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std, want_std, rtol=1e-3, atol=1e-5)
    assert len(list((root / "stats").glob("*_4096_1024.npz"))) == 1  # prepared up front
    assert not list((root / "stats").glob("*_512_256.npz"))
    mean2, _ = ds.magnitude_stats(512, 256)  # lazily computed, then kept on disk
    assert mean2.shape == (257,) and len(list((root / "stats").glob("*_512_256.npz"))) == 1
    np.testing.assert_array_equal(PreparedDataset(root).magnitude_stats(512, 256)[0], mean2)


def test_int16_storage_precision_and_raw_reads(tmp_path):
    writer = CacheWriter(tmp_path / "ds", SR, STEMS, source="test")
    stems = _stems(3)
    stems["bass"] *= 1e-3  # a quiet stem keeps its own precision: the scale is per part
    writer.add_track("t", "train", stems)
    writer.finalize()
    ds = PreparedDataset(tmp_path / "ds")
    assert ds.array("t", "bass").dtype == np.int16
    for s in STEMS:
        peak = np.abs(stems[s]).max()
        np.testing.assert_allclose(ds.load_track("t")[s], stems[s], atol=peak / 32767)
    out = np.empty((2, 100), dtype=np.int16)
    scale = ds.read_raw("t", "drums", SR - 50, out, swap_channels=True)
    np.testing.assert_allclose(out[:, :50] * scale, stems["drums"][::-1, -50:], atol=1e-4)
    assert not out[:, 50:].any()
    gained = ds.read("t", "drums", 10, 20, gain=2.0, swap_channels=True)
    np.testing.assert_allclose(gained, 2 * stems["drums"][::-1, 10:30], atol=1e-4)
