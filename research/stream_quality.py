"""Score a streaming model as `stemsplit stream` runs it: every valid track streamed at a block
size into aligned stems, then `stemsplit evaluate --estimates` on them (median gSDR per stem).

usage: python research/stream_quality.py MODEL DATA OUT [--block 512] [--runtime onnx] [--metrics both]
  MODEL: a causal checkpoint, .onnx or shipped name; DATA: a prepared dataset (its valid split)
Prints the evaluate command's table; the estimates stay in OUT/estimates.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from stemsplit.data.cache import PreparedDataset
from stemsplit.data.dataset import iter_full_tracks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--metrics", default="fast", help="evaluate's --metrics (both: museval's SDR too)")
    args = ap.parse_args()
    dataset = PreparedDataset(args.data)
    estimates = args.out / "estimates"
    stemsplit = [sys.executable, "-m", "stemsplit"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, mixture, _ in iter_full_tracks(dataset, "valid", list(dataset.stems)):
            song = Path(tmp) / f"{name}.wav"
            sf.write(song, mixture.T, dataset.sample_rate, subtype="FLOAT")
            subprocess.run([*stemsplit, "stream", str(song), "-o", str(estimates / name), "--model", args.model,
                            "--block", str(args.block), "--bits", "32", "--runtime", args.runtime], check=True)
    subprocess.run([*stemsplit, "evaluate", "--data", str(args.data), "--split", "valid", "--estimates",
                    str(estimates), "--oracle", "--metrics", args.metrics, "-o", str(args.out / "eval")], check=True)


if __name__ == "__main__":
    main()
