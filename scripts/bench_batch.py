"""A folder of short songs beside one long song of the same total length (`--only batch`).

`stemsplit separate FOLDER` over 50 generated 10-s stereo songs, and `stemsplit separate SONG` over
one 500-s song: both whole processes, interleaved, median of three. The figure is throughput, seconds
of audio per second of wall time (x real time) and of CPU time; a folder should come close to one
long song (nothing is paid per file but opening it and writing its stems).

Alone: `.venv/bin/python scripts/bench_batch.py [--files 50] [--seconds 10] [--reps 3]
[--checkout DIR]` (--checkout: run another checkout's stemsplit, e.g. an older one, for a before/after).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_paired import measure
from bench_separate import ROOT, make_song


def _songs(folder: Path, files: int, seconds: int) -> Path:
    """``files`` songs of ``seconds`` each; different audio per file (a slice of one long take)."""
    folder.mkdir(parents=True)
    long = make_song(folder.parent / "take.wav", files * seconds)
    import soundfile as sf

    audio, rate = sf.read(str(long), dtype="int16")
    step = seconds * rate
    for i in range(files):
        sf.write(str(folder / f"song{i:03d}.wav"), audio[i * step:(i + 1) * step], rate, subtype="PCM_16")
    return long


def _row(runs: list[dict], seconds: float) -> dict:
    wall, cpu = statistics.median(r["wall_s"] for r in runs), statistics.median(r["cpu_s"] for r in runs)
    rss = statistics.median(r["rss_mb"] for r in runs)
    return {"wall_s": round(wall, 2), "x_realtime": round(seconds / wall, 1), "cpu_s": round(cpu, 2),
            "audio_per_cpu_s": round(seconds / cpu, 1), "peak_rss_mb": round(rss),
            "walls_s": [round(r["wall_s"], 2) for r in runs]}


def run(report: dict, files: int = 50, seconds: int = 10, reps: int = 3, checkout: Path | None = None) -> dict:
    env_path = str(checkout or ROOT)
    cmd = [sys.executable, "-m", "stemsplit", "separate"]
    total = files * seconds
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-batch-") as tmp:
        tmp = Path(tmp)
        long = _songs(tmp / "songs", files, seconds)
        runs: dict[str, list[dict]] = {"folder": [], "one": []}
        for i in range(reps):  # interleaved: a slow minute on a shared machine hits both
            runs["folder"].append(measure([*cmd, str(tmp / "songs"), "-o", str(tmp / f"of{i}")], cwd=Path(env_path)))
            runs["one"].append(measure([*cmd, str(long), "-o", str(tmp / f"ol{i}")], cwd=Path(env_path)))
            print(f"  run {i + 1}/{reps}: folder {runs['folder'][-1]['wall_s']:.2f} s, "
                  f"one song {runs['one'][-1]['wall_s']:.2f} s", flush=True)
    rows = {f"folder of {files} x {seconds}-s songs": _row(runs["folder"], total),
            f"one {total}-s song": _row(runs["one"], total)}
    for name, r in rows.items():
        print(f"  {name:28s} {r['wall_s']:7.2f} s {r['x_realtime']:6.1f}x real time  CPU {r['cpu_s']:7.2f} s "
              f"({r['audio_per_cpu_s']:.1f} s of audio per CPU second)  peak RSS {r['peak_rss_mb']} MB", flush=True)
    folder, one = rows.values()
    ratio = one["wall_s"] / folder["wall_s"]
    print(f"  the folder's throughput is {100 * ratio:.0f} % of one song's (wall), "
          f"{100 * one['cpu_s'] / folder['cpu_s']:.0f} % (CPU)")
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    print(f"  load average (1/5/15 min) before {load['before']}, after {load['after']}", flush=True)
    result = {"rows": rows, "folder_vs_one_wall": round(ratio, 3), "reps": reps, "load_average": load,
              "checkout": env_path}
    report["batch (folder of short songs vs one long song)"] = result
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--checkout", type=Path, help="run the stemsplit of this checkout instead")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    report: dict = {}
    run(report, args.files, args.seconds, args.reps, args.checkout)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
