"""`stemsplit prepare musdb|folder|synth` end to end through Typer's runner, on generated data."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from stemsplit.audio.io import write_audio
from stemsplit.cli import app
from stemsplit.data.cache import PreparedDataset

runner = CliRunner()
STEMS = ["vocals", "drums", "bass", "other"]
SR = 8000


def run(*args):
    return runner.invoke(app, ["prepare", *map(str, args)])


def write_track(folder, seed: int, parts=("mixture", *STEMS), frames: int = SR // 2) -> None:
    rng = np.random.default_rng(seed)
    stems = {s: (0.1 * rng.standard_normal((2, frames))).astype(np.float32) for s in STEMS}
    stems["mixture"] = sum(stems.values())
    for part in parts:
        write_audio(folder / f"{part}.wav", stems[part], SR, subtype="PCM_16")


def test_synth_writes_audio_and_a_cache_that_the_loader_reads(tmp_path):
    out = tmp_path / "synth"
    res = run("synth", "--out", out, "--tracks", 2, "--seconds", 1.5, "--sample-rate", 16000, "--seed", 1)
    assert res.exit_code == 0, res.output
    assert "generated 2 song(s)" in res.output and "train 1, valid 1" in res.output
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["sample_rate"] == 16000 and meta["stems"] == STEMS
    assert (out / "audio" / "train" / "synth-1-0000" / "vocals.wav").is_file()
    assert PreparedDataset(out).track_length("synth-1-0001") == 24000


def test_folder_with_a_bad_track_lists_it_and_exits_1(tmp_path):
    root = tmp_path / "stems"
    for i in range(3):
        write_track(root / f"song{i}", i)
    write_track(root / "broken", 9, parts=("vocals", "drums"))
    res = run("folder", "--root", root, "--out", tmp_path / "out", "--valid-fraction", 0.34,
              "--set", f"audio.sample_rate={SR}")
    assert res.exit_code == 1, res.output
    assert "broken" in res.output and "missing stems: bass, other" in res.output
    assert "left out 1 track(s): broken" in res.output
    ds = PreparedDataset(tmp_path / "out")
    assert ds.sample_rate == SR and {k: len(v) for k, v in ds.splits.items()} == {"train": 2, "valid": 1}


def test_folder_extra_stems_flag(tmp_path):
    root = tmp_path / "stems"
    write_track(root / "a", 0)
    write_audio(root / "a" / "Piano.wav", np.zeros((2, SR // 2), np.float32) + 0.01, SR)
    res = run("folder", "--root", root, "--out", tmp_path / "out", "--stems", "vocals,drums,bass,other,piano",
              "--sample-rate", SR, "--valid-fraction", 0)
    assert res.exit_code == 0, res.output
    assert PreparedDataset(tmp_path / "out").stems == STEMS + ["piano"]


def test_musdb_hq_through_the_cli(tmp_path):
    root = tmp_path / "hq"
    write_track(root / "train" / "Artist - Song", 0)
    write_track(root / "test" / "Artist - Other", 1)
    res = run("musdb", "--root", root, "--wav", "--out", tmp_path / "out", "--sample-rate", SR)
    assert res.exit_code == 0, res.output
    assert PreparedDataset(tmp_path / "out").splits == {"test": ["Artist - Other"], "train": ["Artist - Song"]}
    again = run("musdb", "--root", root, "--wav", "--out", tmp_path / "out", "--sample-rate", SR)
    assert again.exit_code == 0 and "0 new, 2 unchanged" in again.output


def test_bad_input_gives_one_line_errors(tmp_path):
    res = run("folder", "--root", tmp_path / "missing", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "folder not found" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = run("musdb", "--root", tmp_path, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "not a MUSDB18 root" in res.output
    res = run("musdb", "--root", tmp_path, "--out", tmp_path / "out", "--subsets", "everything")
    assert res.exit_code == 2 and "choose from train, test" in res.output
    res = run("synth", "--out", tmp_path / "s", "--tracks", 0)
    assert res.exit_code == 2 and "--tracks 0: must be in [1, " in res.output
    res = run("synth", "--out", tmp_path / "s", "--set", "audio.nope=1")
    assert res.exit_code == 2 and "unknown key 'nope'" in res.output
    res = run()
    assert "musdb" in res.output and "folder" in res.output and "synth" in res.output
