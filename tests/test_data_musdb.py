"""MUSDB18 through the musdb package: a generated MUSDB18-HQ folder here, the real excerpts when
STEMSPLIT_MUSDB_ROOT points at them."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import musdb_root, needs_musdb

from stemsplit.audio.io import write_audio
from stemsplit.data.cache import DataError, PreparedDataset
from stemsplit.data.dataset import ExcerptDataset, iter_full_tracks
from stemsplit.pipelines.prepare import PrepareOptions, prepare_musdb

SR = 8000
VALID_NAME = "Actions - One Minute Smile"  # on musdb's validation list
LEVELS = {"vocals": 0.1, "drums": 0.2, "bass": 0.3, "other": 0.4}


def write_hq_track(folder, seed: int) -> None:
    """Each stem is a constant-level tone, so the stored stems show whether the mapping is right."""
    t = np.arange(SR) / SR
    stems = {s: (level * np.stack([np.sin(2 * np.pi * (100 + seed) * t)] * 2)).astype(np.float32)
             for s, level in LEVELS.items()}
    for name, audio in stems.items():
        write_audio(folder / f"{name}.wav", audio, SR, subtype="PCM_16")
    write_audio(folder / "mixture.wav", sum(stems.values()), SR, subtype="PCM_16")


@pytest.fixture
def hq_root(tmp_path):
    root = tmp_path / "musdb18hq"
    for i, name in enumerate(["Artist A - Song", "Artist B - Song", VALID_NAME]):
        write_hq_track(root / "train" / name, i)
    write_hq_track(root / "test" / "Artist C - Test Song", 9)
    return root


def options(tmp_path, **kw) -> PrepareOptions:
    return PrepareOptions(out=tmp_path / "out", sample_rate=SR, **kw)


def test_hq_wav_layout_official_splits_and_stem_mapping(tmp_path, hq_root):
    report = prepare_musdb(hq_root, options(tmp_path), is_wav=True)
    assert report.splits == {"test": 1, "train": 2, "valid": 1} and not report.failed
    ds = PreparedDataset(tmp_path / "out")
    assert ds.tracks("valid") == [VALID_NAME] and ds.stems == ["vocals", "drums", "bass", "other"]
    track = ds.load_track("Artist A - Song")
    for stem, level in LEVELS.items():
        assert abs(np.abs(track[stem]).max() - level) < 0.01, stem
    assert all(c.residual_db < -60 for c in report.checks)
    assert (tmp_path / "out" / "dataset.json").read_text().count("musdb18hq:") == 1


def test_only_a_test_folder_prepares_the_test_split(tmp_path, hq_root):
    import shutil

    shutil.rmtree(hq_root / "train")
    report = prepare_musdb(hq_root, options(tmp_path), is_wav=True)
    assert report.splits == {"test": 1}


def test_a_corrupt_file_is_reported_and_the_rest_prepared(tmp_path, hq_root):
    bad = hq_root / "train" / "Artist B - Song" / "drums.wav"
    bad.write_bytes(b"not a wav file at all" * 20)
    report = prepare_musdb(hq_root, options(tmp_path), is_wav=True)
    (failed,) = report.failed
    assert failed.name == "Artist B - Song" and str(bad) in failed.summary()
    assert report.splits == {"test": 1, "train": 1, "valid": 1}


def test_bad_roots(tmp_path, hq_root):
    with pytest.raises(DataError, match="folder not found"):
        prepare_musdb(tmp_path / "missing", options(tmp_path))
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a MUSDB18 root"):
        prepare_musdb(tmp_path / "plain", options(tmp_path))
    with pytest.raises(DataError, match="add --wav"):
        prepare_musdb(hq_root, options(tmp_path), is_wav=False)


def test_limit_takes_the_first_tracks_of_each_split(tmp_path, hq_root):
    report = prepare_musdb(hq_root, options(tmp_path, limit=1), is_wav=True, subsets=("train",))
    assert report.splits == {"train": 1, "valid": 1}


@needs_musdb
def test_real_musdb18_excerpts(tmp_path):
    """The real .stem.mp4 path: musdb's splits, ffmpeg decoding, the loader on the result."""
    report = prepare_musdb(musdb_root(), PrepareOptions(out=tmp_path / "out", limit=1), subsets=("train",))
    assert report.splits == {"train": 1, "valid": 1} and not report.failed
    ds = PreparedDataset(tmp_path / "out")
    assert ds.sample_rate == 44100 and ds.channels == 2
    assert ds.tracks("valid")[0] in {"Actions - One Minute Smile", "Alexander Ross - Goodbye Bolero",
                                     "ANiMAL - Rockshow"}  # first names of the official list, sorted
    for check in report.checks:  # AAC-coded stems: the mixture matches their sum to about -28 dB
        assert -40 < check.residual_db < -18
    name, mixture, sources = next(iter_full_tracks(ds, "train", ds.stems))
    assert mixture.shape[1] > 6 * 44100 and sources.shape == (4, 2, mixture.shape[1])
    mix, src = ExcerptDataset([ds], "train", ds.stems, 44100, 2, None, seed=0)[0]
    assert src.shape == (4, 2, 44100) and float(src.abs().max()) > 0.01
