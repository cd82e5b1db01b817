"""`stemsplit evaluate` as a user runs it (child processes): every numeric flag is refused in one
line before any work, with the same engine checks as `separate`; the reports say how many
tracks were scored and which were not."""
from __future__ import annotations

import json

import numpy as np
import pytest
from cli_proc import run, run_all
from test_evaluate import SR, STEMS, make_corpus

from stemsplit.audio.io import write_audio
from stemsplit.data.cache import PreparedDataset


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("rel") / "data", n_valid=3, seconds=1.0, seed=5)


def test_numeric_flags_are_refused_before_any_work(corpus, tmp_path):
    cases = {"--workers 0": "--workers 0: must be at least 1",
             "--limit 0": "--limit 0: must be >= 1",
             "--limit -3": "--limit -3: must be >= 1",
             "--stft-n-fft 8": "--stft-n-fft 8: must be in [16, 65536]",
             "--stft-hop 0": "--stft-hop 0: must be in [1, 65536]",
             "--stft-n-fft 1024 --stft-hop 2048": "--stft-hop 2048: must be in [1, 1024]",
             # the separation flags: exactly the checks of `separate`
             "--segment inf": "--segment inf: must be a finite number",
             "--segment nan": "--segment nan: must be a finite number",
             "--segment 0": "--segment 0: must be > 0",
             "--overlap 1.5": "--overlap 1.5: must be a fraction in [0, 1)",
             "--shifts -1": "--shifts -1: must be between 0 and",
             "--device tpu": "--device 'tpu': not a device"}
    out = tmp_path / "eval"
    results = run_all([["evaluate", "--data", corpus, "--split", "valid", "--oracle", "--metrics", "fast",
                        "--out", out, *flag.split()] for flag in cases], tmp_path)
    for (flag, message), res in zip(cases.items(), results):
        (line,) = res.out.strip().splitlines()
        assert res.code == 2 and line.startswith("error: ") and message in line, (flag, res)
    assert not out.exists()  # refused before any work


def test_reports_say_how_many_tracks_were_scored_and_which_were_not(corpus, tmp_path):
    dataset = PreparedDataset(corpus)
    names = dataset.tracks("valid")
    est = tmp_path / "est"
    for track in names[:2]:  # the third track has no estimates: it cannot be scored
        arrays = dataset.load_track(track)
        for stem in STEMS:
            write_audio(est / track / f"{stem}.wav", arrays[stem], SR)
    out = tmp_path / "eval"
    res = run("evaluate", "--data", corpus, "--split", "valid", "--estimates", est, "--metrics", "fast",
              "--workers", 1, "--out", out, cwd=tmp_path)
    assert res.code == 1, res
    text = " ".join(res.out.split())  # rich wraps a title to its table's width
    assert "median over 2 of 3 'valid' tracks" in text, res
    assert f"not scored: {names[2]} (est)" in text, res
    summary = (out / "summary.md").read_text()
    assert "(2 of 3 tracks scored)" in summary
    assert f"## Tracks not scored (1 of 3)\n\n- {names[2]}: est" in summary
    scores = json.loads((out / "scores.json").read_text())
    assert scores["tracks_scored"] == names[:2] and scores["tracks_not_scored"] == {names[2]: ["est"]}
    assert scores["methods"][0]["tracks"] == 2 and scores["methods"][0]["tracks_not_scored"] == [names[2]]
    assert np.isfinite(scores["summary"]["est"]["vocals"]["gsdr"])
