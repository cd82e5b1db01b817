"""research/probe_vocal_gate.py: the remixed training excerpts, their labels, the gate curve, and a
detector that learns vocal frames from the mixture alone (generated audio)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import probe_vocal_gate as probe  # noqa: E402

SECONDS = 6


def _tracks(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Mono stems (4, time): 'vocals' are harmonic tones in bursts, the rest noise."""
    t = np.arange(SECONDS * probe.SR) / probe.SR
    out = []
    for _ in range(n):
        f0 = rng.uniform(200, 400)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        bursts = (np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6)) > 0).astype(float)
        noise = [rng.normal(0, a, t.size) for a in (0.3, 0.2, 0.2)]
        out.append(np.stack([0.5 * tone * bursts, *noise]).astype(np.float32))
    return out


def test_remixed_excerpts_are_three_seconds_and_labelled_only_where_vocals_sound():
    rng = np.random.default_rng(0)
    tracks = _tracks(3, rng)
    silent = [np.concatenate([np.zeros_like(t[:1]), t[1:]]) for t in tracks]
    mixes, labels = probe.remixed_batch(silent, rng, 8, -20.0)
    assert mixes.shape == (8, probe.EXCERPT) and labels.shape == (8, probe.EXCERPT // probe.HOP)
    assert labels.sum() == 0                                  # no vocals anywhere: no vocal frame
    _, labels = probe.remixed_batch(tracks, np.random.default_rng(1), 64, -20.0)
    assert 0.1 < labels.mean() < 0.5                          # half silenced, the rest in bursts


def test_the_gate_follows_the_probability_between_its_two_thresholds():
    frames = 10
    length = frames * probe.HOP
    assert np.all(probe.gate_curve(np.ones(frames), length, 0.1, 0.3) == 1)
    assert np.all(probe.gate_curve(np.zeros(frames), length, 0.1, 0.3) == 0)
    mid = probe.gate_curve(np.full(frames, 0.2), length, 0.1, 0.3)
    assert mid.shape == (length,) and np.allclose(mid, 0.5)


def test_the_detector_learns_vocal_frames_from_the_mixture():
    tracks = _tracks(4, np.random.default_rng(2))
    features = probe.Features()
    net = probe.train_detector(tracks, 60, seed=0, label_db=-20.0, features=features)
    mixes, labels = probe.remixed_batch(tracks, np.random.default_rng(3), 16, -20.0)
    with torch.no_grad():
        predicted = torch.sigmoid(net(features(mixes))).numpy() > 0.5
    assert predicted.shape == labels.shape
    assert (predicted == labels.astype(bool)).mean() > 0.9    # all "no vocals" would score 0.78
