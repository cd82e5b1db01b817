"""`stemsplit train` through the CLI on a `prepare synth` corpus: train then separate, one-line errors,
SIGTERM exit code."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import CONFIGS, TINY, tone_mix
from test_training_corpus import FAST
from typer.testing import CliRunner

from stemsplit.audio.io import write_audio
from stemsplit.cli import app

runner = CliRunner()
STEMS = ("vocals", "drums", "bass", "other")


def _sets(items):
    return [a for s in items for a in ("--set", s)]


def train(*args):
    return runner.invoke(app, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Generated songs through the user's own command, `stemsplit prepare synth`."""
    out = tmp_path_factory.mktemp("corpus") / "synth"
    res = runner.invoke(app, ["prepare", "synth", "--tracks", "4", "--seconds", "2", "--valid-fraction", "0.25",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_train_then_separate_with_best_ckpt(corpus, tmp_path):
    run = tmp_path / "runs" / "lstm"
    res = train("--config", CONFIGS / "lstm.yaml", "--data", corpus, "--out", run, "--device", "cpu",
                *_sets(TINY["lstm"] + FAST + ["train.max_steps=5"]))
    assert res.exit_code == 0, res.output
    assert "done: 5 steps" in res.output and "validation at step" in res.output
    assert (run / "config.yaml").read_text().count("max_steps: 5") == 1

    song = write_audio(tmp_path / "in" / "song.wav", tone_mix(1.2), 44100)
    res = runner.invoke(app, ["separate", str(song), "--model", str(run / "best.ckpt"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    written = {p.stem: p for p in (tmp_path / "out").rglob("*.wav")}
    assert set(written) == set(STEMS)
    audio, sr = sf.read(written["vocals"])
    assert sr == 44100 and audio.shape == (int(1.2 * 44100), 2) and np.isfinite(audio).all()


@pytest.mark.parametrize("extra,match", [
    (["--set", "train.loss=bce"], "train.loss: 'bce' needs a model that predicts binary masks as logits"),
    (["--set", "train.nope=1"], "unknown key 'nope'"),
    (["--set", "train.batch_size=0"], "train.batch_size: must be > 0"),
    (["--set", "data.samples_per_epoch=2"], "fewer than one batch"),
    (["--set", "audio.sample_rate=22050"], "audio.sample_rate: the config says 22050 Hz"),
    (["--device", "cuda:7"], "--device cuda:7"),
])
def test_bad_configs_fail_in_one_line(corpus, tmp_path, extra, match):
    res = train("--config", CONFIGS / "lstm.yaml", "--data", corpus, "--out", tmp_path / "run",
                *_sets(TINY["lstm"] + FAST), *extra)
    assert res.exit_code == 2, res.output
    assert match in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_bad_invocations_fail_in_one_line(corpus, tmp_path):
    cases = [
        (["--config", CONFIGS / "lstm.yaml", "--out", tmp_path / "a"], "needs --config, --data and --out"),
        (["--config", CONFIGS / "lstm.yaml", "--data", tmp_path / "missing", "--out", tmp_path / "b"],
         "dataset folder not found"),
        (["--config", tmp_path / "none.yaml", "--data", corpus, "--out", tmp_path / "c"], "config file not found"),
        (["--resume", tmp_path / "nothing-here"], "no such run folder"),
        (["--resume", tmp_path, "--config", CONFIGS / "lstm.yaml"], "--resume takes the config from the run"),
    ]
    (tmp_path / "empty").mkdir()
    cases.append((["--resume", tmp_path / "empty"], "no usable checkpoint"))
    for args, match in cases:
        res = train(*args)
        assert res.exit_code == 2 and match in res.output, (args, res.output)


def test_an_existing_run_is_not_overwritten(corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.ckpt").write_bytes(b"x")
    res = train("--config", CONFIGS / "lstm.yaml", "--data", corpus, "--out", run)
    assert res.exit_code == 2 and "already holds a training run" in res.output
    assert (run / "last.ckpt").read_bytes() == b"x"


@pytest.mark.slow
def test_sigterm_saves_and_exits_143(corpus, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "stemsplit", "train", "--config", str(CONFIGS / "lstm.yaml"), "--data",
           str(corpus), "--out", str(run), "--device", "cpu",
           *_sets(TINY["lstm"] + FAST + ["train.epochs=1000", "train.checkpoint_every_steps=1000"])]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for line in proc.stderr:  # plain progress lines: one per step
            if line.startswith("step 3/"):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and (run / "last.ckpt").exists()
    assert not list(run.glob(".*.tmp"))  # nothing half-written
