"""`stemsplit evaluate` end to end through Typer's runner on a tiny generated corpus."""
import csv

import numpy as np
import pytest
from conftest import write_tiny_checkpoint
from test_evaluate import SR, TINY, make_corpus
from typer.testing import CliRunner

from stemsplit.audio.io import write_audio
from stemsplit.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("cli") / "data", seed=3)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "small.ckpt", "lstm", TINY)


def test_end_to_end_model_beside_the_oracles(corpus, ckpt, tmp_path):
    out = tmp_path / "eval"
    res = run("--data", corpus, "--split", "valid", "--model", ckpt, "--oracle", "--metrics", "both",
              "--out", out, "--workers", "1")
    assert res.exit_code == 0, res.output
    for name in ("small", "oracle-ibm", "oracle-irm-mag", "oracle-irm-power", "mixture"):
        assert name in res.stdout  # the rich tables go to stdout
    assert "SDR (BSS Eval v4)" in res.stdout and "global SDR" in res.stdout
    for name in ("summary.csv", "summary.md", "tracks.csv", "scores.json", "sdr_boxplot.png"):
        assert (out / name).is_file(), name
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == {"small", "oracle-ibm", "oracle-irm-mag", "oracle-irm-power", "mixture"}
    # run again: everything comes from the cache
    res = run("--data", corpus, "--split", "valid", "--model", ckpt, "--oracle", "--metrics", "both",
              "--out", out, "--workers", "1")
    assert res.exit_code == 0 and "0 (model, track) item(s) to score, 10 reused" in res.output


@pytest.mark.parametrize("args,match", [
    (["--split", "tset", "--oracle"], "no split 'tset'; the splits are: "),
    (["--split", "valid", "--model", "missing.ckpt"], "model file not found"),
    (["--split", "valid"], "nothing to evaluate"),
    (["--split", "valid", "--oracle", "--metrics", "slow"], "--metrics 'slow'"),
    (["--split", "valid", "--oracle", "--workers", "0"], "--workers 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(corpus, tmp_path, args, match):
    res = run("--data", corpus, "--out", tmp_path / "o", *args)
    assert res.exit_code == 2, res.output
    assert match in res.output and len(res.output.strip().splitlines()) == 1


def test_not_a_prepared_dataset(tmp_path):
    res = run("--data", tmp_path, "--oracle", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "not a prepared dataset" in res.output


def test_stems_mismatch_names_both_sides(corpus, tmp_path):
    four = write_tiny_checkpoint(tmp_path / "four.ckpt", "lstm", TINY[:2] + ["stems=[vocals, drums, bass, other]"])
    res = run("--data", corpus, "--split", "valid", "--model", four, "--out", tmp_path / "o")
    assert res.exit_code == 2 and "but dataset" in res.output and "['vocals', 'other']" in res.output


def test_wrong_length_estimates_exit_1_and_keep_the_other_scores(corpus, tmp_path):
    from stemsplit.data.cache import PreparedDataset

    dataset = PreparedDataset(corpus)
    est = tmp_path / "sep" / "mine"
    for track in dataset.tracks("valid"):
        arrays = dataset.load_track(track)
        for stem in dataset.stems:
            audio = arrays[stem] if track != "song 1" else np.asarray(arrays[stem])[:, :-100]
            write_audio(est / track / f"{stem}.wav", audio, SR)
    out = tmp_path / "eval"
    res = run("--data", corpus, "--split", "valid", "--estimates", est, "--metrics", "fast", "--out", out,
              "--workers", "1")
    assert res.exit_code == 1
    assert "15900 samples, but the track has 16000" in res.output
    with open(out / "summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["model"] == "mine" and r["stem"] == "vocals"]
    assert rows and float(rows[0]["value"]) > 80  # the good track is scored and reported
