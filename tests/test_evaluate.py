"""The evaluate pipeline on a tiny generated corpus: reports, resume, --estimates, bad input.

The corpus is mono, two stems, 8 kHz: BSS Eval's cost is a filter solve whose size grows with
stems x channels, so this keeps every museval call well under a second.
"""
import csv
import json

import numpy as np
import pytest
from conftest import write_tiny_checkpoint

from stemsplit.audio.io import write_audio
from stemsplit.checkpoint import CheckpointError, load_checkpoint
from stemsplit.data.cache import CacheWriter, DataError, PreparedDataset
from stemsplit.evaluation import EvaluationError
from stemsplit.evaluation.reports import read_summary_csv
from stemsplit.metrics import global_sdr_stems
from stemsplit.pipelines.evaluate import EvaluateRequest, evaluate
from stemsplit.separation.torch_runner import torch_engine

SR = 8000
STEMS = ["vocals", "other"]
TINY = ["audio.sample_rate=8000", "audio.channels=1", "stems=[vocals, other]"]
ORACLES = ["oracle-ibm", "oracle-irm-mag", "oracle-irm-power", "mixture"]


def make_corpus(root, n_valid=2, seconds=2.0, stems=STEMS, channels=1, seed=0):
    """A prepared dataset of generated tracks: n_valid in 'valid', one in 'train'."""
    rng = np.random.default_rng(seed)
    writer = CacheWriter(root, SR, list(stems), "generated", dtype="float32")
    t = np.arange(int(seconds * SR)) / SR
    for i in range(n_valid + 1):
        parts = {}
        for k, stem in enumerate(stems):
            tone = np.sin(2 * np.pi * (150 + 200 * k + 20 * i) * t) * (0.5 + 0.4 * np.sin(2 * np.pi * (k + 1) * t))
            noise = np.convolve(rng.standard_normal(t.size), np.hanning(5 + 6 * k) / (3 + 3 * k), "same")
            parts[stem] = np.repeat(((tone + noise) * 0.3)[None], channels, 0).astype(np.float32)
        writer.add_track(f"song {i}", "valid" if i < n_valid else "train", parts)
    writer.finalize()
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "data")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.ckpt", "lstm", TINY)


class Recorder:
    def __init__(self, stop_after=None):
        self.jobs = self.cached = None
        self.outcomes = []
        self.stop_after = stop_after

    def planned(self, n_jobs, n_cached):
        self.jobs, self.cached = n_jobs, n_cached

    def job_done(self, outcome):
        self.outcomes.append(outcome)
        if self.stop_after is not None and len(self.outcomes) >= self.stop_after:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run

    def message(self, text):
        pass


def request(corpus, out, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("split", "valid")
    return EvaluateRequest(data=corpus, out=out, **kw)


def test_oracle_and_model_reports(corpus, ckpt, tmp_path):
    report = evaluate(request(corpus, tmp_path / "eval", models=[str(ckpt)], oracle=True, metrics="both"))
    assert report.errors == []
    assert [s.name for s in report.methods] == ["tiny", *ORACLES]
    out = tmp_path / "eval"
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["model", "stem", "metric", "value"]
    summary = read_summary_csv(out / "summary.csv")
    assert len(summary) == 5 * 3 * 5  # models x (stems + mean) x metrics
    assert {r["metric"] for r in rows} == {"gsdr", "SDR", "SIR", "ISR", "SAR"}
    for metric in ("gsdr", "SDR"):  # the oracles beat the floor, the mean row is the stems' mean
        for stem in STEMS:
            assert summary[("oracle-irm-power", stem, metric)] > summary[("mixture", stem, metric)] + 3
        mean = np.mean([summary[("tiny", s, metric)] for s in STEMS])
        assert summary[("tiny", "mean", metric)] == pytest.approx(mean, abs=1e-3)
    # summary values are medians over the per-track values of tracks.csv
    with open(out / "tracks.csv", newline="") as fh:
        per_track = [r for r in csv.DictReader(fh) if r["model"] == "oracle-ibm" and r["stem"] == "other"
                     and r["metric"] == "SDR"]
    assert len(per_track) == 2
    assert summary[("oracle-ibm", "other", "SDR")] == pytest.approx(
        np.median([float(r["value"]) for r in per_track]), abs=1e-3)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["split"] == "valid" and scores["tracks"] == ["song 0", "song 1"]
    assert scores["methods"][0]["checkpoint_sha256"] and scores["methods"][1]["n_fft"] == 512  # the model's STFT
    md = (out / "summary.md").read_text()
    assert "| oracle-irm-mag |" in md and "## SDR (BSS Eval v4)" in md
    assert (out / "sdr_boxplot.png").stat().st_size > 10_000
    assert (out / "museval" / "mixture" / "valid" / "song 1.json").is_file()


def test_oracle_stft_comes_from_the_first_model_or_the_options(corpus, ckpt, tmp_path):
    ckpt_stft = load_checkpoint(ckpt).config.stft
    report = evaluate(request(corpus, tmp_path / "a", models=[str(ckpt)], oracle=True, metrics="fast"))
    assert report.methods[1].stft == (ckpt_stft.n_fft, ckpt_stft.hop_length) == (512, 128)
    report = evaluate(request(corpus, tmp_path / "b", oracle=True, metrics="fast"))
    assert report.methods[0].stft == (4096, 1024)
    report = evaluate(request(corpus, tmp_path / "c", oracle=True, metrics="fast", stft_n_fft=1024, stft_hop=256))
    assert report.methods[0].stft == (1024, 256)


def test_model_scores_come_from_the_chunked_engine(corpus, ckpt, tmp_path):
    report = evaluate(request(corpus, tmp_path / "e", models=[str(ckpt)], metrics="fast"))
    dataset = PreparedDataset(corpus)
    arrays = dataset.load_track("song 1")
    est = torch_engine(load_checkpoint(ckpt)).separate(arrays["mixture"])
    expected = global_sdr_stems(np.stack([arrays[s] for s in STEMS]), est)
    got = report.results["tiny"]["song 1"].gsdr
    np.testing.assert_allclose([got[s] for s in STEMS], expected, atol=1e-4)


def test_resume_reuses_cached_tracks_and_survives_an_interrupt(corpus, ckpt, tmp_path):
    out = tmp_path / "eval"
    req = request(corpus, out, models=[str(ckpt)], oracle=True, metrics="fast")
    with pytest.raises(KeyboardInterrupt):
        evaluate(req, Recorder(stop_after=3))
    assert len(list((out / "cache").rglob("*.json"))) == 3  # finished items are on disk
    ui = Recorder()
    report = evaluate(req, ui)
    assert (ui.jobs, ui.cached) == (10 - 3, 3)
    ui = Recorder()
    again = evaluate(req, ui)
    assert (ui.jobs, ui.cached) == (0, 10)
    assert again.summary == pytest.approx(report.summary, nan_ok=True)
    # asking for more metrics scores again, keeping both families; then everything is cached
    ui = Recorder()
    evaluate(request(corpus, out, models=[str(ckpt)], metrics="both"), ui)
    assert (ui.jobs, ui.cached) == (2, 0)
    ui = Recorder()
    evaluate(request(corpus, out, models=[str(ckpt)], metrics="museval"), ui)
    assert (ui.jobs, ui.cached) == (0, 2)
    # a different checkpoint under the same path is a different key
    write_tiny_checkpoint(ckpt.parent / "other.ckpt", "lstm", TINY, seed=1).replace(ckpt.parent / "moved.ckpt")
    ui = Recorder()
    evaluate(request(corpus, out, models=[str(ckpt.parent / "moved.ckpt")], metrics="fast"), ui)
    assert ui.jobs == 2


def write_estimates(folder, corpus, fn):
    dataset = PreparedDataset(corpus)
    for track in dataset.tracks("valid"):
        arrays = dataset.load_track(track)
        for stem in STEMS:
            write_audio(folder / track / f"{stem}.wav", fn(arrays, stem), SR)


def test_estimates_folder_is_scored_like_the_others(corpus, tmp_path):
    perfect = tmp_path / "perfect"
    write_estimates(perfect, corpus, lambda a, s: a[s])
    floor = tmp_path / "separated" / "floor"
    write_estimates(floor, corpus, lambda a, s: a["mixture"])
    report = evaluate(request(corpus, tmp_path / "eval", estimates=[perfect], metrics="both"))
    assert report.errors == [] and [s.name for s in report.methods] == ["perfect"]
    for stem in STEMS:
        assert report.value("perfect", stem, "gsdr") > 80  # float32 files: exact copies
        assert report.value("perfect", stem, "SDR") > 60
    report = evaluate(request(corpus, tmp_path / "eval", estimates=[floor], oracle=True, metrics="fast"))
    assert [s.name for s in report.methods][0] == "floor"
    for stem in STEMS:  # the mixture written to disk scores exactly as the mixture row
        assert report.value("floor", stem, "gsdr") == pytest.approx(report.value("mixture", stem, "gsdr"), abs=1e-4)


def test_bad_estimates_fail_per_track_and_keep_the_rest(corpus, tmp_path):
    est = tmp_path / "est"
    write_estimates(est, corpus, lambda a, s: a[s])
    write_audio(est / "song 1" / "other.wav", np.zeros((1, 1234), np.float32) + 0.1, SR)  # wrong length
    (est / "song 0" / "vocals.wav").unlink()
    report = evaluate(request(corpus, tmp_path / "eval", estimates=[est], oracle=True, metrics="fast"))
    assert len(report.errors) == 2
    assert "song 0" in report.errors[0] and "no estimate for stem 'vocals'" in report.errors[0]
    assert "other.wav: 1234 samples, but the track has 16000" in report.errors[1]
    assert report.results["est"] == {} and len(report.results["mixture"]) == 2
    assert "## Errors" in (tmp_path / "eval" / "summary.md").read_text()


def test_bad_input_gives_one_line_errors(corpus, ckpt, tmp_path):
    with pytest.raises(DataError, match="no split 'tset'; the splits are: .*valid"):
        evaluate(request(corpus, tmp_path / "o", split="tset", oracle=True))
    with pytest.raises(CheckpointError, match="model file not found"):
        evaluate(request(corpus, tmp_path / "o", models=[str(tmp_path / "missing.ckpt")]))
    four = write_tiny_checkpoint(tmp_path / "four.ckpt", "lstm", TINY[:2] + ["stems=[vocals, drums, bass, other]"])
    with pytest.raises(EvaluationError, match=r"separates \['vocals', 'drums', 'bass', 'other'\] but dataset"):
        evaluate(request(corpus, tmp_path / "o", models=[str(four)]))
    with pytest.raises(EvaluationError, match="nothing to evaluate"):
        evaluate(request(corpus, tmp_path / "o"))
    with pytest.raises(EvaluationError, match="folder not found"):
        evaluate(request(corpus, tmp_path / "o", estimates=[tmp_path / "nope"]))
    with pytest.raises(EvaluationError, match="--metrics"):
        evaluate(request(corpus, tmp_path / "o", oracle=True, metrics="slow"))


def test_parallel_workers_give_the_same_scores(corpus, ckpt, tmp_path):
    one = evaluate(request(corpus, tmp_path / "one", models=[str(ckpt)], oracle=True, metrics="fast"))
    two = evaluate(request(corpus, tmp_path / "two", models=[str(ckpt)], oracle=True, metrics="fast", workers=2))
    assert two.errors == []
    assert two.summary == pytest.approx(one.summary, abs=1e-4)
