#!/usr/bin/env python3
"""stemsplit benchmarks on this machine. Prints each section's table and writes JSON.

usage: scripts/benchmark.py [--only separate,data,train,evaluate,shipped,default,runtimes] [--json PATH]

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

SECTIONS = ("separate", "shipped", "default", "runtimes", "data", "train", "evaluate")


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
    from stemsplit.cli.allocator import tune_allocator

    tune_allocator()  # the same allocator settings as the `stemsplit` command
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
