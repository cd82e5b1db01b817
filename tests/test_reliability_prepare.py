"""`stemsplit prepare` and `train` as a user runs them (child processes): MUSDB18's test split
keeps a track whose mixture is not the sum of its stems (warned, exit 0; --strict leaves it
out), every numeric flag is refused in one line before any work, and a dataset without a valid
split is never a silent surprise for `train`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_proc import run, run_all
from conftest import CONFIGS

from stemsplit.audio.io import write_audio
from stemsplit.data.cache import PreparedDataset
from stemsplit.data.folder import FolderTrack, assign_splits

SR = 8000
STEMS = ("vocals", "drums", "bass", "other")
ODD_TRACK = "PR - Oh No"  # in MUSDB18's test set its mixture is the sum of its stems only to -7.3 dB


def write_track(folder: Path, seed: int, mixture_scale: float | None = 1.0) -> None:
    """Four 1-second stems; mixture = mixture_scale * their sum (None: no mixture file)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    stems = {s: (0.1 * np.stack([np.sin(2 * np.pi * (110 * (k + 1) + seed) * t)] * 2)
                 + 0.01 * rng.standard_normal((2, SR))).astype(np.float32) for k, s in enumerate(STEMS)}
    for name, audio in stems.items():
        write_audio(folder / f"{name}.wav", audio, SR, subtype="FLOAT")
    if mixture_scale is not None:
        write_audio(folder / "mixture.wav", mixture_scale * sum(stems.values()), SR, subtype="FLOAT")


@pytest.fixture(scope="module")
def test_split_root(tmp_path_factory) -> Path:
    """A MUSDB18-HQ root holding only test/, with one track like MUSDB18's "PR - Oh No"."""
    root = tmp_path_factory.mktemp("musdb") / "musdb18hq"
    for i, name in enumerate(["AM Contra - Heart Peripheral", "Al James - Schoolboy Facination"]):
        write_track(root / "test" / name, i)
    # a mixture at 0.6985 x the sum: residual 20 log10(0.3015 / 0.6985) = -7.3 dB
    write_track(root / "test" / ODD_TRACK, 7, mixture_scale=0.6985)
    return root


def test_musdb_test_split_keeps_a_track_whose_mixture_is_not_the_sum_of_its_stems(tmp_path, test_split_root):
    args = ["prepare", "musdb", "--root", test_split_root, "--wav", "--sample-rate", SR]
    res = run(*args, "--out", tmp_path / "all", cwd=tmp_path)
    assert res.code == 0, res
    (warning,) = res.lines("warning:")  # one warning, naming the track and its residual
    assert warning.startswith(f"warning: {ODD_TRACK} (test): mixture is not the sum of its stems "
                              "(residual -7.3 dB, limit -20 dB); kept"), res
    assert "test 3 tracks" in res.out and "0 left out" in res.out, res
    assert PreparedDataset(tmp_path / "all").tracks("test") == sorted(
        ["AM Contra - Heart Peripheral", "Al James - Schoolboy Facination", ODD_TRACK])

    strict = run(*args, "--strict", "--out", tmp_path / "strict", cwd=tmp_path)
    assert strict.code == 1, strict  # as before: left out, and the exit code says so
    assert f"left out {ODD_TRACK}: strict: mixture is not the sum of its stems" in strict.out, strict
    assert "test 2 tracks" in strict.out and not strict.lines("warning:")


def test_prepare_refuses_bad_numbers_in_one_line_before_any_work(tmp_path):
    root = tmp_path / "stems"
    write_track(root / "t0", 0)
    out = tmp_path / "out"
    folder = ["prepare", "folder", "--root", root, "--out", out]
    synth = ["prepare", "synth", "--out", out]
    musdb = ["prepare", "musdb", "--root", root, "--out", out]
    cases = [
        (folder + ["--sample-rate", "0"], "--sample-rate 0: must be in [1000, 384000]"),
        (folder + ["--limit", "-1"], "--limit -1: must be >= 0"),
        (folder + ["--max-residual-db", "nan"], "--max-residual-db nan: must be a finite number"),
        (folder + ["--silence-db", "inf"], "--silence-db inf: must be a finite number"),
        (folder + ["--silence-db", "3"], "--silence-db 3: must be in [-200, 0)"),
        (folder + ["--valid-fraction", "nan"], "--valid-fraction nan: must be a finite number"),
        (folder + ["--valid-fraction", "1"], "--valid-fraction 1: must be in [0, 1)"),
        (folder + ["--seed", "-1"], "--seed -1: must be in [0, "),
        (folder + ["--dtype", "float16"], "--dtype 'float16': choose one of int16, float32"),
        (musdb + ["--max-residual-db", "-inf"], "--max-residual-db -inf: must be a finite number"),
        (synth + ["--seconds", "inf"], "--seconds inf: must be a finite number"),
        (synth + ["--seconds", "nan"], "--seconds nan: must be a finite number"),
        (synth + ["--seconds", "0"], "--seconds 0: must be in (0, 3600]"),
        (synth + ["--tracks", "0"], "--tracks 0: must be in [1, "),
        (synth + ["--valid-fraction", "-0.5"], "--valid-fraction -0.5: must be in [0, 1)"),
    ]
    for (_args, message), res in zip(cases, run_all([args for args, _ in cases], tmp_path)):
        (line,) = res.out.strip().splitlines()
        assert res.code == 2 and line.startswith("error: ") and message in line, (message, res)
    assert not out.exists()  # refused before any work


def test_a_drawn_valid_track_that_fails_is_replaced_by_a_passing_one(tmp_path):
    root = tmp_path / "stems"
    names = ["t0", "t1", "t2"]
    for i, name in enumerate(names):
        write_track(root / name, i, mixture_scale=None)
    drawn = assign_splits([FolderTrack(n, root / n, None, {}) for n in names], 0.1, 0)
    (valid,) = [n for n, split in drawn.items() if split == "valid"]
    (root / valid / "bass.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    res = run("prepare", "folder", "--root", root, "--out", tmp_path / "out", "--sample-rate", SR, cwd=tmp_path)
    assert res.code == 1 and f"left out {valid}: unreadable" in res.out, res
    (note,) = res.lines("moved ")
    assert "every track drawn for the valid split was left out" in note, res
    ds = PreparedDataset(tmp_path / "out")
    assert len(ds.tracks("train")) == 1 and len(ds.tracks("valid")) == 1
    assert valid not in ds.tracks("train") + ds.tracks("valid")


def test_one_track_warns_at_prepare_and_train_says_what_to_do(tmp_path):
    write_track(tmp_path / "stems" / "only", 0)
    data = tmp_path / "data"
    res = run("prepare", "folder", "--root", tmp_path / "stems", "--out", data, "--sample-rate", SR, cwd=tmp_path)
    assert res.code == 0, res
    (warning,) = res.lines("warning:")
    assert "no 'valid' split (1 train track(s)); 'stemsplit train' validates on it" in warning, res
    base = ["train", "--config", CONFIGS / "lstm.yaml", "--data", data, "--out", tmp_path / "run"]
    cases = {"": f"error: {data}: has no 'valid' split, which training validates on; prepare it again from "
                 "at least 2 tracks",
             # and config values (--set) must be finite, checked before the dataset is even opened
             "train.lr=nan": "train.lr: must be a finite number",
             "data.excerpt_seconds=inf": "data.excerpt_seconds: must be a finite number"}
    runs = run_all([base + (["--set", v] if v else []) for v in cases], tmp_path)
    for (value, message), res in zip(cases.items(), runs):
        (line,) = res.out.strip().splitlines()
        assert res.code == 2 and line.startswith("error: ") and message in line, (value, res)
