#!/usr/bin/env python3
"""Training throughput per architecture with the shipped configs (configs/*.yaml), on this machine.

For each architecture the real training loop (``stemsplit.pipelines.train.run_train``) runs a
few steps at the config's own batch size and excerpt length on a generated corpus (content
does not change the speed). The loop's own instrumentation (metrics.csv, one row per step)
gives seconds per step, excerpts per second and the fraction of step time spent waiting for
the data loader; the first step (allocator and kernel warm-up) is left out.

usage: scripts/bench_train.py [--steps N] [--device cpu|cuda] [--json PATH]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from stemsplit.data.cache import CacheWriter  # noqa: E402
from stemsplit.models import names  # noqa: E402
from stemsplit.pipelines.train import TrainOptions, run_train  # noqa: E402

ARCHS = tuple(n for n in names() if (ROOT / "configs" / f"{n}.yaml").is_file())  # every family with a config
STEMS = ["vocals", "drums", "bass", "other"]
SR = 44100


def make_corpus(root: Path, train_tracks: int = 4, seconds: float = 30.0) -> Path:
    """Tones, beats and noise as four stems; a short valid track keeps the final validation cheap."""
    rng = np.random.default_rng(0)
    writer = CacheWriter(root, SR, STEMS, source="bench_train generated")
    for i in range(train_tracks + 1):
        n = int((seconds if i < train_tracks else 3.0) * SR)
        t = np.arange(n) / SR
        f = rng.uniform(100, 400)
        parts = [np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)]
        stems = {
            "vocals": 0.2 * parts[0] * (1 + 0.3 * np.sin(2 * np.pi * 5 * t)),
            "drums": 0.3 * np.exp(-25 * (t % 0.5)) * rng.standard_normal(n),
            "bass": 0.3 * np.sin(2 * np.pi * f / 4 * t),
            "other": 0.1 * (parts[1] + parts[2]) + 0.01 * rng.standard_normal(n),
        }
        writer.add_track(f"bench{i}", "train" if i < train_tracks else "valid",
                         {k: np.stack([v, 0.9 * v]).astype(np.float32) for k, v in stems.items()},
                         source_hash=f"bench{i}")
    writer.finalize()
    return root


def bench_arch(arch: str, corpus: Path, out: Path, steps: int, device: str) -> dict:
    overrides = [f"train.max_steps={steps + 1}", "train.log_every_steps=1", "train.warmup_steps=0",
                 "train.checkpoint_every_steps=100000", "data.samples_per_epoch=100000",
                 "train.val_excerpts=2", "train.val_tracks=1"]
    t0 = time.perf_counter()
    run_train(TrainOptions(config=ROOT / "configs" / f"{arch}.yaml", data=corpus, out=out,
                           overrides=overrides, device=device))
    wall = time.perf_counter() - t0
    with (out / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["phase"] == "train"][1:]  # drop the warm-up step
    s_per_step = statistics.mean(float(r["s_per_step"]) for r in rows)
    wait = sum(float(r["data_wait"]) * float(r["s_per_step"]) for r in rows) / sum(float(r["s_per_step"]) for r in rows)
    with (out / "config.yaml").open() as fh:
        import yaml
        cfg = yaml.safe_load(fh)
    batch = cfg["train"]["batch_size"]
    return {"batch_size": batch, "excerpt_seconds": cfg["data"]["excerpt_seconds"],
            "num_workers": cfg["data"]["num_workers"], "steps_measured": len(rows),
            "s_per_step": round(s_per_step, 3), "excerpts_per_s": round(batch / s_per_step, 2),
            "data_wait_fraction": round(wait, 4), "wall_s_incl_setup_and_validation": round(wall, 1)}


def run(report: dict, steps: int = 2, device: str = "cpu") -> None:
    results = {}
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-train-") as tmp:
        corpus = make_corpus(Path(tmp) / "corpus")
        for arch in ARCHS:
            results[arch] = bench_arch(arch, corpus, Path(tmp) / f"run-{arch}", steps, device)
    label = f"train ({device}, {torch.get_num_threads()} threads)"
    report[label] = results
    print(f"  {'model':9} {'batch':>5} {'excerpt':>8} {'s/step':>8} {'excerpts/s':>11} {'data wait':>10}")
    for arch, r in results.items():
        print(f"  {arch:9} {r['batch_size']:>5} {r['excerpt_seconds']:>7.1f}s {r['s_per_step']:>8.2f} "
              f"{r['excerpts_per_s']:>11.2f} {100 * r['data_wait_fraction']:>9.1f}%")


def main() -> int:
    from stemsplit.heap import apply_heap_policy

    apply_heap_policy("train")  # the heap settings of `stemsplit train`
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="measured steps per architecture (after 1 warm-up)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    report: dict = {}
    run(report, steps=args.steps, device=args.device)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
