#!/usr/bin/env python3
"""Separate a prepared split with one runtime and write the stems for `stemsplit evaluate --estimates`.

usage:
  research/runtime_estimates.py MODEL DATA OUT --runtime onnx|torch [--split valid] [--threads N]
                               [--against OTHER_OUT]

MODEL is a shipped name (or a .onnx / .ckpt path). OUT/<track>/<stem>.wav are float32 WAVs at
the model's rate, which `stemsplit evaluate --data DATA --split valid --estimates OUT` scores
like a model. With --against, it also prints each stem's SDR against the same stem in
OTHER_OUT (the other runtime's output): how closely the two runtimes agree.

The README's "Shipped ONNX models" table: the same model through both runtimes, same tracks.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stemsplit.audio.io import read_audio  # noqa: E402
from stemsplit.audio.writer import write_audio  # noqa: E402
from stemsplit.data.reader import PreparedDataset  # noqa: E402
from stemsplit.separation.engine import Engine  # noqa: E402


def runner_for(model: str, runtime: str, threads: int | None):
    if runtime == "onnx":
        from stemsplit.pretrained import resolve_onnx
        from stemsplit.separation.onnx_runner import load_onnx_runner

        return load_onnx_runner(resolve_onnx(model), threads=threads)
    import torch

    from stemsplit.resolver import load_torch
    from stemsplit.separation.torch_runner import TorchRunner

    if threads:
        torch.set_num_threads(threads)
    loaded = load_torch(model)
    return TorchRunner(loaded.model, loaded.config, "cpu")


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2), in dB."""
    noise = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference ** 2) / max(noise, 1e-20) + 1e-20))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--runtime", choices=("onnx", "torch"), required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--against", type=Path, default=None, help="another run's OUT: SDR of stem against stem")
    args = ap.parse_args(argv)
    data = PreparedDataset(args.data)
    engine = Engine(runner_for(args.model, args.runtime, args.threads))
    agreement = []
    started = time.perf_counter()
    for track in data.splits[args.split]:
        stems = engine.separate(data.load_track(track)["mixture"])
        for name, audio in zip(engine.stems, stems):
            path = args.out / track / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_audio(path, audio, engine.sample_rate, subtype="FLOAT")
            if args.against is not None:
                other, _ = read_audio(args.against / track / f"{name}.wav")
                agreement.append(sdr(other, audio))
    print(f"{args.model} on {args.runtime}: {len(data.splits[args.split])} tracks in "
          f"{time.perf_counter() - started:.1f} s -> {args.out}")
    if agreement:
        print(f"stem against stem SDR vs {args.against}: min {min(agreement):.1f} dB, "
              f"median {float(np.median(agreement)):.1f} dB over {len(agreement)} stems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
