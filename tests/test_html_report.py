"""The listening report (`evaluate --html`): which tracks get players, the files beside the page,
escaping, the summary's numbers, and re-runs. The page in a real browser: test_html_browser.py."""
import html
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_checkpoint
from test_evaluate import TINY
from typer.testing import CliRunner

from stemsplit.audio import encode
from stemsplit.audio.io import audio_info, write_audio
from stemsplit.cli import app
from stemsplit.data.cache import CacheWriter
from stemsplit.evaluation import EvaluationError, listening
from stemsplit.evaluation.listening import pick_tracks, separation_speed, track_spreads
from stemsplit.pipelines.evaluate import EvaluateRequest, evaluate

SR = 8000
STEMS = ["vocals", "other"]
HOSTILE_TRACK = "<script>window.pwned=1</script>"
HOSTILE_MODEL = "<img src=x onerror=window.pwned=2>"
TRACKS = ["calm song", HOSTILE_TRACK, "busy song"]
NOISE = {"close": [0.01, 0.01, 0.01], HOSTILE_MODEL: [0.02, 0.1, 0.5]}  # per track: spreads grow


def make_listening_corpus(root: Path, seconds: float = 2.0) -> tuple[Path, list[Path]]:
    """A prepared dataset of three 'valid' tracks (one with a hostile name) and two folders of
    estimates as the 'models': 'close' is the true stems plus a little noise, the hostile-named
    one adds more noise on each later track, so the spread between them grows track by track."""
    rng = np.random.default_rng(7)
    writer = CacheWriter(root / "data", SR, STEMS, "generated", dtype="float32")
    t = np.arange(int(seconds * SR)) / SR
    truth = {}
    for i, name in enumerate(TRACKS):
        parts = {"vocals": 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t)),
                 "other": np.convolve(rng.standard_normal(t.size), np.hanning(9) / 5, "same") * 0.2}
        truth[name] = {k: v[None].astype(np.float32) for k, v in parts.items()}
        writer.add_track(name, "valid", truth[name])
    writer.finalize()
    folders = []
    for model, levels in NOISE.items():
        folder = root / "estimates" / model
        for name, level in zip(TRACKS, levels):
            for stem, audio in truth[name].items():
                noisy = audio + level * rng.standard_normal(audio.shape).astype(np.float32)
                write_audio(folder / name / f"{stem}.wav", noisy, SR)  # the hostile name nests folders
        folders.append(folder)
    return root / "data", folders


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_listening_corpus(tmp_path_factory.mktemp("listen"))


def run(corpus, out, **kw):
    data, folders = corpus
    kw.setdefault("estimates", folders)
    kw.setdefault("metrics", "fast")
    return evaluate(EvaluateRequest(data=data, split="valid", out=out, workers=1, **kw))


def test_players_go_to_the_tracks_where_the_models_differ_most(corpus, tmp_path):
    report = run(corpus, tmp_path / "e")
    spreads = track_spreads(report)
    assert spreads["busy song"] > spreads[HOSTILE_TRACK] > spreads["calm song"] > 0
    assert [t for t, _ in pick_tracks(report, 2)] == ["busy song", HOSTILE_TRACK]
    assert [t for t, _ in pick_tracks(report, 10)] == ["busy song", HOSTILE_TRACK, "calm song"]
    # one model alone: its spread against the oracles decides
    alone = run(corpus, tmp_path / "one", estimates=corpus[1][1:], oracle=True)
    assert all(np.isfinite(v) and v > 0 for v in track_spreads(alone).values())


def _urls(page: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(r'(?:src)="([^"]+)"', page)]


def test_page_files_escaping_and_numbers(corpus, tmp_path):
    out = tmp_path / "eval"
    report = run(corpus, out, oracle=True, metrics="both", html=True, html_tracks=2)
    page = (out / "report.html").read_text()
    assert report.files["html"] == out / "report.html"
    # the hostile names are text, nowhere markup; ours is the only script
    assert page.count("<script") == 1 and HOSTILE_TRACK not in page and HOSTILE_MODEL not in page
    assert html.escape(HOSTILE_TRACK) in page and html.escape(HOSTILE_MODEL, quote=True) in page
    assert "<img src=x" not in page
    # no network: every link is a file beside the page, and each one exists
    assert "http://" not in page and "https://" not in page
    urls = _urls(page)
    assert urls and all(not u.startswith(("/", "http")) and (out / u).is_file() for u in urls)
    # two players (the widest spread first), with mixture, 2 references, 2 models and 3 oracles
    assert sorted(p.name for p in (out / "report").iterdir() if p.is_dir()) == ["t00", "t01"]
    titles = re.findall(r'<h3 class="track-name">(.*?)</h3>', page)
    assert [html.unescape(t) for t in titles] == ["busy song", HOSTILE_TRACK]
    audio = [u for u in urls if u.endswith(".webm")]
    assert len(audio) == 2 * (1 + 2 + (2 + 3) * 2)
    assert audio_info(out / audio[0]).channels == 1
    sources = re.findall(r'class="source [a-z]+" data-source="([^"]+)"', page)
    assert sources == ["mix", "ref", "m0", "m1", "m2", "m3", "m4"] * 2  # the mixture oracle is the mixture
    # each estimate shows its own score on that track
    vocals = report.results["close"]["busy song"].track_values()[("vocals", "SDR")]
    assert f"SDR {vocals:.2f} dB".replace("-", "&minus;") in page
    # the summary: both metrics, oracle rows, headroom closed, the boxplot
    assert "SDR (BSS Eval v4" in page and "global SDR" in page
    assert page.count('<tr class="oracle">') == 2 * 4
    closed = (report.value("close", "mean", "gsdr") - report.value("mixture", "mean", "gsdr")) / (
        report.value("oracle-irm-mag", "mean", "gsdr") - report.value("mixture", "mean", "gsdr"))
    assert f"{100 * closed:.0f}&nbsp;%" in page
    assert (out / "report" / "sdr_boxplot.png").read_bytes() == (out / "sdr_boxplot.png").read_bytes()


def test_rerun_swaps_the_report_whole(corpus, tmp_path):
    out = tmp_path / "eval"
    run(corpus, out, html=True, html_tracks=3)
    assert (out / "report" / "t02").is_dir()
    run(corpus, out, html=True, html_tracks=1)  # scores come from the cache, the report is new
    assert sorted(p.name for p in (out / "report").iterdir() if p.is_dir()) == ["t00"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging or old folder left
    assert (out / "report.html").read_text().count('<section class="player" id=') == 1


def test_a_killed_runs_staging_folder_is_removed_and_a_live_ones_kept(corpus, tmp_path):
    out = tmp_path / "eval"
    dead, live = out / ".report.999999999-deadbeef.tmp", out / f".report.{os.getpid()}-0123abcd.tmp"
    for folder in (dead, live):
        (folder / "t00").mkdir(parents=True)
    run(corpus, out, html=True, html_tracks=1)
    assert not dead.exists() and live.is_dir() and (out / "report" / "t00").is_dir()


def test_a_method_that_fails_on_a_player_track_is_left_out_and_reported(corpus, tmp_path, monkeypatch):
    real = listening.produce_estimates

    def flaky(spec, track, *args):
        if spec.name == "close" and track == "busy song":
            raise ValueError("disk on fire\nsecond line")
        return real(spec, track, *args)

    monkeypatch.setattr(listening, "produce_estimates", flaky)
    report = run(corpus, tmp_path / "eval", html=True, html_tracks=2)
    assert report.errors == ["close / busy song: listening report: disk on fire"]
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "close: left out (disk on fire)" in page
    first = page.split('<section class="player"')[1]
    assert 'data-source="m0"' not in first and 'data-source="m1"' in first


def test_model_speed_comes_from_the_scoring_run(corpus, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.ckpt", "lstm",
                                 TINY[:1] + ["audio.channels=1", "stems=[vocals, other]"])
    out = tmp_path / "eval"
    report = run(corpus, out, models=[str(ckpt)], estimates=[], html=True, html_tracks=1)
    speed = separation_speed(report, SR)
    assert set(speed) == {"tiny"} and speed["tiny"] > 0
    assert all(r.extra["separate_seconds"] > 0 for r in report.results["tiny"].values())
    assert f"{speed['tiny']:.1f}&times; real time" in (out / "report.html").read_text()


def test_cli_html_writes_the_page(corpus, tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--data", str(corpus[0]), "--split", "valid", "--estimates", str(corpus[1][0]),
            "--metrics", "fast", "--workers", "1", "--html", "--html-tracks", "1", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "report.html (open it in a browser)" in res.output
    assert (out / "report.html").read_text().count('<section class="player" id=') == 1


@pytest.mark.parametrize("value", ["0", "-3", "abc", "2.5"])
def test_bad_html_tracks_is_one_line_before_any_work(corpus, tmp_path, value):
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["evaluate", "--data", str(corpus[0]), "--split", "valid", "--oracle",
                                   "--html", "--html-tracks", value, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"--html-tracks {value!r}: must be a whole number of at least 1" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()


def test_html_without_ffmpeg_stops_before_scoring(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(encode.shutil, "which", lambda name: None)
    with pytest.raises(EvaluationError, match="--html: compressed audio needs ffmpeg"):
        run(corpus, tmp_path / "eval", html=True)
    assert not (tmp_path / "eval").exists()
