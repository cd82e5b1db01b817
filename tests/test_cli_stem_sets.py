"""Any stem set, end to end through the CLI: generated piano-like and violin-like tones go
through ``prepare folder --stems piano,violin``, ``train`` with ``stems: [piano, violin]``,
``separate`` (which writes piano.wav and violin.wav) and ``evaluate``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from typer.testing import CliRunner

from stemsplit.cli import app

SR = 22050
runner = CliRunner()


def piano_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Struck notes: slightly inharmonic partials that decay, upper ones faster."""
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for start in np.arange(0.0, seconds, 0.25):
        f0 = 130.8 * 2 ** (rng.integers(0, 24) / 12)
        n = t[t >= start] - start
        note = sum(np.sin(2 * np.pi * k * f0 * np.sqrt(1 + 4e-4 * k * k) * n) * np.exp(-(3 + 2 * k) * n) / k
                   for k in range(1, 9))
        out[t >= start] += 0.08 * note
    return out


def violin_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Bowed notes: a sawtooth-like harmonic series with vibrato and a soft attack, held."""
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for start in np.arange(0.0, seconds, 0.5):
        f0 = 392.0 * 2 ** (rng.integers(0, 14) / 12)
        span = (t >= start) & (t < start + 0.5)
        n = t[span] - start
        phase = 2 * np.pi * f0 * (n + 0.004 / (2 * np.pi * 6) * np.sin(2 * np.pi * 6 * n) * 2 * np.pi)
        envelope = np.minimum(1.0, n / 0.06) * np.minimum(1.0, (0.5 - n) / 0.02)
        out[span] = 0.05 * envelope * sum(np.sin(k * phase) / k for k in range(1, 11))
    return out


def write_folder(root: Path, tracks: int = 4, seconds: float = 2.0) -> Path:
    """ROOT/<track>/{piano,violin}.wav, stereo with a little panning."""
    rng = np.random.default_rng(0)
    for i in range(tracks):
        folder = root / f"duet{i}"
        folder.mkdir(parents=True)
        for name, make in (("piano", piano_like), ("violin", violin_like)):
            mono, pan = make(rng, seconds), rng.uniform(0.7, 1.0)
            sf.write(folder / f"{name}.wav", np.stack([mono * pan, mono * (1.7 - pan)], axis=1), SR)
    return root


def test_piano_and_violin_through_prepare_train_separate_and_evaluate(tmp_path):
    source = write_folder(tmp_path / "duets")
    data = tmp_path / "prepared"
    res = runner.invoke(app, ["prepare", "folder", "--root", str(source), "--out", str(data),
                              "--stems", "piano,violin", "--valid-fraction", "0.25", "--sample-rate", str(SR)])
    assert res.exit_code == 0, res.output
    prepared = json.loads((data / "dataset.json").read_text())
    assert prepared["stems"] == ["piano", "violin"]

    config = tmp_path / "duet.yaml"
    config.write_text(yaml.safe_dump({
        "audio": {"sample_rate": SR, "channels": 2}, "stft": {"n_fft": 1024, "hop_length": 256},
        "model": {"name": "nmf", "components": 8, "fit_iterations": 10, "separate_iterations": 40},
        "stems": ["piano", "violin"], "separate": {"segment_seconds": 1.0},
        "train": {"batch_size": 4, "epochs": 1, "val_excerpts": 4},
        "data": {"excerpt_seconds": 1.0, "samples_per_epoch": 40, "num_workers": 0}}))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--config", str(config), "--data", str(data), "--out", str(run),
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output

    rng = np.random.default_rng(7)
    piano, violin = piano_like(rng, 3.0), violin_like(rng, 3.0)
    sf.write(tmp_path / "duet.wav", np.stack([piano + violin] * 2, axis=1), SR)
    res = runner.invoke(app, ["separate", str(tmp_path / "duet.wav"), "--model", str(run / "best.ckpt"),
                              "-o", str(tmp_path / "sep"), "--filename", "{track}/{stem}.{ext}"])
    assert res.exit_code == 0, res.output
    written = sorted(p.name for p in (tmp_path / "sep" / "duet").iterdir())
    assert written == ["piano.wav", "violin.wav"]
    for name, truth in (("piano", piano), ("violin", violin)):
        estimate, sr = sf.read(tmp_path / "sep" / "duet" / f"{name}.wav")
        assert sr == SR and estimate.shape == (truth.size, 2)
        # each file is mostly its own instrument: closer to it than the mixture is
        assert _sdr(truth, estimate[:, 0]) > _sdr(truth, piano + violin) + 3.0, name

    res = runner.invoke(app, ["evaluate", "--data", str(data), "--split", "valid", "-m", str(run / "best.ckpt"),
                              "--oracle", "--metrics", "fast", "--workers", "1", "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    summary = (tmp_path / "eval" / "summary.csv").read_text()
    assert "piano" in summary and "violin" in summary and "vocals" not in summary


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))
