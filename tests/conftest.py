"""Shared fixtures: generated audio and tiny random-weight checkpoints. No test reads ../shared."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stemsplit.checkpoint import save_checkpoint
from stemsplit.config import load_config
from stemsplit.models import build_model

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ARCHS = ("mask_cnn", "lstm", "unet")

# Tiny versions of each architecture: same code paths, a fraction of the compute.
TINY = {
    "mask_cnn": ["model.conv_channels=[2,2,2,2]", "model.hidden_size=4"],
    "lstm": ["model.hidden_size=16", "model.num_layers=2", "model.max_bin=64",
             "stft.n_fft=512", "stft.hop_length=128"],
    "unet": ["model.base_channels=2", "model.depth=3", "model.max_bin=128",
             "stft.n_fft=512", "stft.hop_length=128"],
    # the families of tests/test_models_families.py (not in ARCHS: the card's tests stay as they are)
    "crnn": ["model.conv_channels=[2,4]", "model.hidden_size=16", "model.max_bin=64",
             "stft.n_fft=512", "stft.hop_length=128"],
    # the streaming configuration (configs/crnn_causal.yaml: causal convolutions, a forward GRU)
    "crnn_causal": ["model.conv_channels=[2,4]", "model.hidden_size=16", "model.max_bin=64",
                    "stft.n_fft=512", "stft.hop_length=128"],
    "transformer": ["model.d_model=16", "model.num_layers=1", "model.num_heads=2", "model.ff_size=16",
                    "model.max_bin=64", "stft.n_fft=512", "stft.hop_length=128"],
    "deep_clustering": ["model.hidden_size=16", "model.num_layers=1", "model.embedding_size=4",
                        "stft.n_fft=256", "stft.hop_length=128"],
    "waveform_fnn": ["model.window=64", "model.hidden_sizes=[32]"],
    "nmf": ["model.components=4", "model.fit_iterations=3", "model.separate_iterations=5",
            "stft.n_fft=512", "stft.hop_length=128"],
    "open_unmix": ["model.hidden_size=8", "model.num_layers=2", "model.max_bin=64", "stft.n_fft=512",
                   "stft.hop_length=128"],
    "band_split": ["model.num_bands=8", "model.feature_size=8", "model.hidden_size=8", "model.num_blocks=1",
                   "model.mlp_size=16", "model.max_bin=64", "stft.n_fft=512", "stft.hop_length=128"],
}


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield


def tiny_config(arch: str, extra: list[str] | None = None):
    return load_config(CONFIGS / f"{arch}.yaml", TINY[arch] + (extra or []))


def write_tiny_checkpoint(path: Path, arch: str, extra: list[str] | None = None, seed: int = 0) -> Path:
    cfg = tiny_config(arch, extra)
    torch.manual_seed(seed)
    model = build_model(cfg)
    save_checkpoint(path, model, cfg, meta={"note": "test"})
    return path


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture
def tiny_ckpt(tmp_path, arch) -> Path:
    return write_tiny_checkpoint(tmp_path / f"{arch}.ckpt", arch)


def tone_mix(seconds: float = 2.0, sr: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A stereo test signal: a few harmonics plus a little noise, (channels, time) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    sig = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t + rng.uniform(0, 6)) for k in range(1, 6))
    out = np.stack([sig * (0.8 + 0.2 * c) for c in range(channels)]) + 0.01 * rng.standard_normal((channels, t.size))
    return out.astype(np.float32)


def musdb_root() -> Path | None:
    root = os.environ.get("STEMSPLIT_MUSDB_ROOT")
    return Path(root) if root and Path(root).is_dir() else None


needs_musdb = pytest.mark.skipif(musdb_root() is None, reason="STEMSPLIT_MUSDB_ROOT is not set")
