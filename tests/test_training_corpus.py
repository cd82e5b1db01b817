"""A tiny generated multitrack corpus for the training tests (and a check that it is sane).

Each stem has its own character so that separation is learnable in a few steps: vocals a
vibrato tone with harmonics, drums noise bursts, bass a low sine, other a two-note chord.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stemsplit.data.cache import CacheWriter, PreparedDataset

STEMS = ["vocals", "drums", "bass", "other"]
SR = 44100

# Training settings shared by the tests: seconds of compute, not minutes.
FAST = ["train.batch_size=4", "data.excerpt_seconds=0.5", "data.samples_per_epoch=16", "train.epochs=2",
        "train.val_excerpts=4", "train.warmup_steps=0", "train.log_every_steps=1",
        "train.checkpoint_every_steps=2", "data.num_workers=0", "separate.segment_seconds=1.0"]


def _track(rng: np.random.Generator, seconds: float) -> dict[str, np.ndarray]:
    t = np.arange(int(seconds * SR)) / SR
    f0 = rng.uniform(300, 500)
    vocals = sum(0.15 / k * np.sin(2 * np.pi * k * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)) for k in range(1, 4))
    beat = (np.floor(t * rng.uniform(3, 5)) != np.floor((t - 0.05) * 4)).astype(float)
    drums = 0.3 * rng.standard_normal(t.size) * np.exp(-30 * (t % 0.25)) * (0.5 + 0.5 * beat)
    bass = 0.3 * np.sin(2 * np.pi * rng.uniform(50, 90) * t)
    f1 = rng.uniform(200, 260)
    other = 0.1 * (np.sign(np.sin(2 * np.pi * f1 * t)) + np.sign(np.sin(2 * np.pi * 1.5 * f1 * t)))
    out = {}
    for name, sig in zip(STEMS, (vocals, drums, bass, other)):
        pan = rng.uniform(0.6, 1.0)
        out[name] = np.stack([sig * pan, sig * (1.6 - pan)]).astype(np.float32)
    return out


def make_corpus(root: Path, n_train: int = 4, n_valid: int = 2, seconds: float = 1.5, seed: int = 0) -> Path:
    """Write a prepared dataset with ``train`` and ``valid`` splits; returns its folder."""
    rng = np.random.default_rng(seed)
    writer = CacheWriter(root, SR, STEMS, source="generated for tests")
    for i in range(n_train + n_valid):
        split = "train" if i < n_train else "valid"
        writer.add_track(f"song{i}", split, _track(rng, seconds), source_hash=f"test{seed}-{i}")
    writer.finalize()
    return root


def test_corpus_is_a_prepared_dataset(tmp_path):
    ds = PreparedDataset(make_corpus(tmp_path / "corpus", n_train=2, n_valid=1, seconds=0.5))
    assert ds.tracks("train") == ["song0", "song1"] and ds.tracks("valid") == ["song2"]
    track = ds.load_track("song2")
    assert np.allclose(track["mixture"], sum(track[s] for s in STEMS), atol=1e-2)
