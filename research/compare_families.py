#!/usr/bin/env python3
"""A markdown table comparing trained models: quality from one `stemsplit evaluate` run, beside
parameters, training minutes and separation speed.

usage:
  research/compare_families.py EVAL_DIR ROW=MODEL [ROW=MODEL ...] [--minutes ROW=MIN ...] [--label ROW=TEXT ...]
                              [--no-speed]

ROW is a method name in EVAL_DIR/summary.csv (what `evaluate` called it) and MODEL the shipped
name or checkpoint path it was evaluated from. EVAL_DIR must hold the `--oracle` rows. For
each model the table gives the median global SDR per stem, the mean, the share of headroom
closed, (mean - mixture) / (oracle-irm-mag - mixture), the parameter count, the training
minutes (the last wall_time of metrics.csv beside a checkpoint; --minutes overrides) and the
speed on a 3-minute stereo song (scripts/bench_separate.py's song), followed by the oracle rows.

The speed is 180 s divided by the CPU time (user + system) of one `stemsplit separate --jobs 1`
process: the real-time factor of one core. CPU time, unlike wall time, stays put when other
jobs share the machine, so the rows compare fairly on a busy computer.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))  # bench_separate's generated song
sys.path.insert(0, str(HERE.parent))

from stemsplit.models import count_parameters  # noqa: E402
from stemsplit.resolver import load_torch  # noqa: E402

ORACLES = ("oracle-ibm", "oracle-irm-mag", "oracle-irm-power", "mixture")


def _summary(eval_dir: Path) -> tuple[dict, list[str]]:
    with open(eval_dir / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stems = list(dict.fromkeys(r["stem"] for r in rows if r["stem"] != "mean"))
    return {(r["model"], r["stem"], r["metric"]): float(r["value"]) for r in rows}, stems


def _minutes(model: str) -> float | None:
    metrics = Path(model).parent / "metrics.csv"
    if not metrics.is_file():
        return None
    with open(metrics, newline="") as f:
        times = [float(r["wall_time"]) for r in csv.DictReader(f) if r.get("wall_time")]
    return max(times) / 60 if times else None


def _speed(model: str, song: Path, out: Path) -> float:
    """180 s over the CPU seconds of a one-thread `stemsplit separate` of the 3-minute song."""
    cmd = [sys.executable, "-m", "stemsplit", "separate", str(song), "--model", model, "-o", str(out),
           "--jobs", "1", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"separate failed with {model}: {err.strip()[-300:]}")
    return 180 / (usage.ru_utime + usage.ru_stime)


def _dB(value: float) -> str:
    return f"{value:.2f}".replace("-", "\u2212")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("models", nargs="+", metavar="ROW=MODEL")
    ap.add_argument("--minutes", action="append", default=[], metavar="ROW=MIN")
    ap.add_argument("--label", action="append", default=[], metavar="ROW=TEXT", help="name shown for ROW")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args(argv)
    table, stems = _summary(args.eval_dir)
    floor, limit = table[("mixture", "mean", "gsdr")], table[("oracle-irm-mag", "mean", "gsdr")]
    minutes = {k: float(v) for k, v in (m.split("=", 1) for m in args.minutes)}
    labels = dict(m.split("=", 1) for m in args.label)
    print(f"| model | {' | '.join(stems)} | mean | headroom closed | parameters | training min | speed (× real time, 1 core) |")
    print("|---|" + "---:|" * (len(stems) + 5))
    with tempfile.TemporaryDirectory(prefix="stemsplit-compare-") as tmp:
        song = None
        if not args.no_speed:
            import bench_separate

            song = bench_separate.make_song(Path(tmp) / "song.wav", 180)
        for item in args.models:
            row, model = item.split("=", 1)
            if (row, "mean", "gsdr") not in table:
                raise SystemExit(f"{args.eval_dir}/summary.csv has no row {row!r}")
            params = count_parameters(load_torch(model).model)
            mins = minutes.get(row, _minutes(model))
            speed = "" if song is None else f"{_speed(model, song, Path(tmp) / 'out'):.1f}"
            mean = table[(row, "mean", "gsdr")]
            cells = [_dB(table[(row, s, "gsdr")]) for s in stems] + [_dB(mean), f"{100 * (mean - floor) / (limit - floor):.0f} %",
                                                                    f"{params / 1e6:.2f}M",
                                                                    "" if mins is None else f"{mins:.0f}", speed]
            print(f"| {labels.get(row, row)} | " + " | ".join(cells) + " |", flush=True)
    for row in ORACLES:
        values = [table.get((row, s, "gsdr"), float("nan")) for s in (*stems, "mean")]
        print(f"| {row} | " + " | ".join(_dB(v) for v in values) + " | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
