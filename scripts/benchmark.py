#!/usr/bin/env python3
"""stemsplit benchmarks on this machine. Prints each section's table and writes JSON.

usage: scripts/benchmark.py [--only separate,data,train,evaluate,shipped,default,runtimes,stream,paired,batch]
                            [--json PATH]

Sections:
  separate  wall time / real-time factor for a 3-minute song and peak RSS for 1- and
            30-minute songs, per architecture, random weights at the configured size
  shipped   the same for the models that ship in the package
  default   the same for today's default model beside the previous default (registry.json's
            "previous_default"), in one run: the quality issue's speed and memory bars
  runtimes  the default model on torch and on ONNX Runtime side by side (and ONNX in a fresh
            `pip install stemsplit` venv without torch): wall time, x real time, peak RSS, the
            ONNX stems' SDR against torch's, and the venv sizes of both installs (bench_runtimes.py)
  data      loader throughput (excerpts/s) with 0, 1 and 2 workers
  train     training throughput per architecture
  evaluate  evaluation tracks per minute with 1 and 2 workers
  paired    the default model beside Open-Unmix UMX-HQ (its own `umx` command, random weights of its
            size, --niter 1) on one 3-minute song, and the default on a 30-minute song, interleaved,
            median of three: wall time, x real time, CPU time, peak RSS, and the ratio against the
            bars (>= 10x faster, <= 400 MB) (bench_paired.py)
  batch     a folder of 50 10-s songs beside one 500-s song: throughput of each whole
            `stemsplit separate` process, interleaved, median of three (bench_batch.py)
  stream    real-time streaming, one stream on one thread, per streaming model and runtime: declared
            latency, compute p50/p99 per 512-sample block, x real time, CPU use; the histogram of
            the per-block compute times -> docs/stream_compute_histogram.png (bench_stream.py)
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SECTIONS = ("separate", "shipped", "default", "runtimes", "paired", "batch", "data", "train", "evaluate", "stream")


def _shipped(report: dict) -> None:
    import bench_separate

    from stemsplit.pretrained import list_models

    models = {m["name"]: Path(m["path"]) for m in list_models()}
    if not models:
        print("  no shipped models in this build")
        report["separate (shipped models)"] = {}
        return
    bench_separate.run(report, models, label="shipped models")


def _default(report: dict) -> None:
    import bench_separate

    from stemsplit.pretrained import registry

    reg = registry()
    models = {f"{reg['default']} (default)": reg["default"]}
    previous = reg.get("previous_default")
    if previous and previous != reg["default"]:
        models[f"{previous} (previous default)"] = previous
    bench_separate.run(report, models, label="default beside the previous default")


def main() -> int:
    from stemsplit.heap import apply_heap_policy

    # the in-process sections (data, train, evaluate) get those commands' heap settings; the
    # separations run as `stemsplit separate` processes, which apply their own
    apply_heap_policy("train")
    ap = argparse.ArgumentParser(description="stemsplit benchmarks")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--json", default="benchmark_results.json")
    args = ap.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "processor": platform.processor() or platform.machine()}}
    for name in wanted:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        if name == "shipped":
            _shipped(report)
        elif name == "default":
            _default(report)
        else:
            module = importlib.import_module(f"bench_{name}")
            module.run(report)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
