"""Evaluation throughput: tracks per minute of `evaluate` with 1 and 2 workers.

A generated MUSDB-7-like corpus (7-second stereo 44.1 kHz tracks, four stems) is scored
with the LSTM model at its configured size (random weights: the cost is the same as a
trained one) through the real pipeline: chunked separation, then BSS Eval v4 and global SDR
(``--metrics both``). Every measurement starts from an empty output folder, so nothing comes
from the resume cache; worker start-up is included, as a user pays it.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stemsplit.checkpoint import save_checkpoint  # noqa: E402
from stemsplit.config import load_config  # noqa: E402
from stemsplit.data.cache import CacheWriter  # noqa: E402
from stemsplit.models import DEFAULT_ARCHITECTURE, build_model  # noqa: E402
from stemsplit.pipelines.evaluate import EvaluateRequest, evaluate  # noqa: E402

SR = 44100
STEMS = ["vocals", "drums", "bass", "other"]
TRACKS = 2  # BSS Eval costs ~5-10 s a track on one core: two keep this section under ~2 minutes
SECONDS = 7.0


def make_corpus(root: Path) -> Path:
    """TRACKS generated stereo tracks in a 'test' split (and one in 'train')."""
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * SR)) / SR
    writer = CacheWriter(root, SR, STEMS, "bench", dtype="float32")
    for i in range(TRACKS + 1):
        f0 = 110 * (1 + i % 3)
        parts = {
            "vocals": np.sin(2 * np.pi * 2 * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)),
            "drums": np.exp(-25 * (t % 0.5)) * rng.standard_normal(t.size),
            "bass": 0.8 * np.sin(2 * np.pi * f0 / 2 * t),
            "other": np.convolve(rng.standard_normal(t.size), np.hanning(16) / 8, "same"),
        }
        stems = {k: (0.2 * np.stack([v, 0.9 * v]) + 0.005 * rng.standard_normal((2, t.size))).astype(np.float32)
                 for k, v in parts.items()}
        writer.add_track(f"track {i}", "test" if i < TRACKS else "train", stems)
    writer.finalize()
    return root


def tracks_per_minute(data: Path, ckpt: Path, out: Path, workers: int, metrics: str) -> tuple[float, float]:
    start = time.perf_counter()
    report = evaluate(EvaluateRequest(data=data, split="test", models=[str(ckpt)], metrics=metrics,
                                      out=out, workers=workers))
    seconds = time.perf_counter() - start
    if report.errors:
        raise RuntimeError(f"evaluate failed: {report.errors[0]}")
    return TRACKS / seconds * 60.0, seconds


def run(report: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-eval-") as tmp:
        tmp = Path(tmp)
        data = make_corpus(tmp / "data")
        cfg = load_config(ROOT / "configs" / f"{DEFAULT_ARCHITECTURE}.yaml")
        torch.manual_seed(0)
        ckpt = tmp / "model.ckpt"
        save_checkpoint(ckpt, build_model(cfg), cfg)
        figures: dict[str, dict] = {}
        for metrics, workers in (("both", 1), ("both", 2), ("fast", 1)):
            rate, seconds = tracks_per_minute(data, ckpt, tmp / f"out-{metrics}-{workers}", workers, metrics)
            figures[f"{metrics}, {workers} worker(s)"] = {"tracks_per_minute": round(rate, 2),
                                                         "seconds": round(seconds, 1)}
    report["evaluate"] = {
        "corpus": f"{TRACKS} generated tracks, {SECONDS:g} s stereo 44.1 kHz, 4 stems",
        "model": f"{DEFAULT_ARCHITECTURE} (configs/{DEFAULT_ARCHITECTURE}.yaml, random weights), chunked engine on CPU",
        "cpu_count": os.cpu_count(),
        "runs": figures,
    }
    print(f"evaluate throughput ({report['evaluate']['corpus']}; {os.cpu_count()} CPUs)")
    print(f"  {'metrics, workers':<22} {'tracks/min':>10} {'seconds':>8}")
    for name, fig in figures.items():
        print(f"  {name:<22} {fig['tracks_per_minute']:>10.2f} {fig['seconds']:>8.1f}")


if __name__ == "__main__":
    out: dict = {}
    run(out)
