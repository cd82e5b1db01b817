"""stemsplit's default beside Open-Unmix UMX-HQ, in one run on this machine (`--only paired`).

Both are whole processes, as a user runs them, on the same generated 3-minute stereo song:
  stemsplit  `stemsplit separate SONG` with the default model (ONNX Runtime, every core)
  UMX-HQ     Open-Unmix's own command, `umx SONG --model FOLDER --niter 1 --no-cuda`, on a model
             folder of UMX-HQ's size (hidden 512, 16 kHz bandwidth, n_fft 4096, hop 1024) with random
             weights, saved as open-unmix's training writes one (<target>.pth, <target>.json,
             separator.json): weights do not change its speed. Its audio goes through stempeg
             (`--audio-backend stempeg`, ffmpeg), as torchaudio 2.9 and later need torchcodec to read.
The runs are interleaved (stemsplit, UMX-HQ, stemsplit on a 30-minute song, three times) and
each figure is the median of three: wall time, x real time, CPU time (user + sys) and peak RSS.
The bars: stemsplit at least 10x faster than UMX-HQ, and at most 400 MB peak RSS on both songs.

Needs the dev install (torch and openunmix for the UMX-HQ side). Alone:
`.venv/bin/python scripts/bench_paired.py [--reps 3] [--no-long] [--seconds 180] [--stemsplit-args ARGS]`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_separate import ROOT, make_song

STEMS = ("vocals", "drums", "bass", "other")
SPEED_BAR, RSS_BAR_MB = 10.0, 400.0
UMX_HIDDEN, UMX_N_FFT, UMX_HOP, UMX_BANDWIDTH, RATE = 512, 4096, 1024, 16000, 44100

# Linux carries ru_maxrss across fork and exec, so the process is started by a small launcher
# (python -S, a few MB) whose own peak cannot hide the child's (see bench_separate.py).
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
code = os.waitstatus_to_exitcode(status)
print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, code)
if code:
    sys.stderr.write(err.decode(errors="replace")[-600:])
"""


def measure(cmd: list[str], cwd: Path | None = None) -> dict:
    """Wall seconds, CPU seconds (user + sys) and peak RSS (MB) of one process."""
    proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd], capture_output=True, text=True, cwd=cwd)
    fields = proc.stdout.split()
    if proc.returncode != 0 or len(fields) != 4 or fields[3] != "0":
        raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed: {proc.stderr.strip()[-600:]}")
    return {"wall_s": float(fields[0]), "cpu_s": float(fields[1]), "rss_mb": int(fields[2]) / 1024}


def umx_folder(folder: Path, seed: int = 0) -> Path:
    """A UMX-HQ-sized open-unmix model folder with random weights (what open-unmix's train.py writes)."""
    import torch
    from openunmix import utils
    from openunmix.model import OpenUnmix

    folder.mkdir(parents=True, exist_ok=True)
    max_bin = int(utils.bandwidth_to_max_bin(RATE, UMX_N_FFT, UMX_BANDWIDTH))
    torch.manual_seed(seed)
    for stem in STEMS:
        net = OpenUnmix(nb_bins=UMX_N_FFT // 2 + 1, nb_channels=2, hidden_size=UMX_HIDDEN, max_bin=max_bin)
        torch.save(net.state_dict(), folder / f"{stem}.pth")
        args = {"nfft": UMX_N_FFT, "nhop": UMX_HOP, "hidden_size": UMX_HIDDEN, "nb_channels": 2,
                "bandwidth": UMX_BANDWIDTH, "target": stem}
        (folder / f"{stem}.json").write_text(json.dumps({"args": args}))
    (folder / "separator.json").write_text(json.dumps({"nfft": UMX_N_FFT, "nhop": UMX_HOP, "sample_rate": RATE,
                                                       "nb_channels": 2}))
    return folder


def stemsplit_cmd(song: Path, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "stemsplit", "separate", str(song), "-o", str(out), *extra]


def umx_cmd(song: Path, folder: Path, out: Path) -> list[str]:
    umx = Path(sys.executable).parent / "umx"
    return [str(umx), str(song), "--model", str(folder), "--targets", *STEMS, "--niter", "1", "--no-cuda",
            "--audio-backend", "stempeg", "--outdir", str(out)]


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _row(runs: list[dict], seconds: float) -> dict:
    wall = _median(runs, "wall_s")
    return {"wall_s": round(wall, 2), "x_realtime": round(seconds / wall, 1),
            "cpu_s": round(_median(runs, "cpu_s"), 2), "peak_rss_mb": round(_median(runs, "rss_mb")),
            "walls_s": [round(r["wall_s"], 2) for r in runs]}


def run(report: dict, reps: int = 3, long_song: bool = True, seconds: int = 180, extra: tuple[str, ...] = ()) -> dict:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-paired-") as tmp:
        tmp = Path(tmp)
        song = make_song(tmp / "song_3min.wav", seconds)
        long = make_song(tmp / "song_30min.wav", 1800) if long_song else None
        folder = umx_folder(tmp / "umxhq-random")
        runs: dict[str, list[dict]] = {"stemsplit": [], "umx": [], "stemsplit_30min": []}
        for i in range(reps):  # interleaved, so a slow minute on a shared machine hits both sides
            runs["stemsplit"].append(measure(stemsplit_cmd(song, tmp / f"out-s{i}", extra), cwd=tmp))
            runs["umx"].append(measure(umx_cmd(song, folder, tmp / f"out-u{i}"), cwd=tmp))
            if long is not None:
                runs["stemsplit_30min"].append(measure(stemsplit_cmd(long, tmp / "out-long", extra), cwd=tmp))
            print(f"  run {i + 1}/{reps}: stemsplit {runs['stemsplit'][-1]['wall_s']:.2f} s, "
                  f"UMX-HQ {runs['umx'][-1]['wall_s']:.2f} s", flush=True)
    length = f"{seconds / 60:g} min"
    ours, theirs = _row(runs["stemsplit"], seconds), _row(runs["umx"], seconds)
    rows = {f"stemsplit default ({length})": ours, f"Open-Unmix UMX-HQ, --niter 1 ({length})": theirs}
    if long is not None:
        rows["stemsplit default (30 min)"] = _row(runs["stemsplit_30min"], 1800)
    ratio = theirs["wall_s"] / ours["wall_s"]
    rss = max(r["peak_rss_mb"] for name, r in rows.items() if name.startswith("stemsplit"))
    for name, r in rows.items():
        print(f"  {name:38s} {r['wall_s']:7.2f} s {r['x_realtime']:6.1f}x real time  CPU {r['cpu_s']:7.2f} s  "
              f"peak RSS {r['peak_rss_mb']:5.0f} MB", flush=True)
    print(f"  speed: stemsplit is {ratio:.1f}x faster than UMX-HQ (bar >= {SPEED_BAR:.0f}x): "
          f"{'PASS' if ratio >= SPEED_BAR else 'FAIL'}")
    print(f"  memory: stemsplit's peak RSS {rss:.0f} MB (bar <= {RSS_BAR_MB:.0f} MB): "
          f"{'PASS' if rss <= RSS_BAR_MB else 'FAIL'}")
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    print(f"  load average (1/5/15 min) before {load['before']}, after {load['after']}", flush=True)
    result = {"rows": rows, "ratio": round(ratio, 2), "speed_bar": SPEED_BAR, "speed_ok": ratio >= SPEED_BAR,
              "rss_bar_mb": RSS_BAR_MB, "rss_ok": rss <= RSS_BAR_MB, "reps": reps, "load_average": load,
              "command": " ".join(["stemsplit separate SONG", *extra, "|", "umx SONG --model FOLDER --niter 1 "
                                   "--no-cuda --audio-backend stempeg"])}
    report["paired (default vs Open-Unmix UMX-HQ)"] = result
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-long", action="store_true", help="skip the 30-minute song")
    ap.add_argument("--seconds", type=int, default=180, help="the short song's length (a quick check: 10)")
    ap.add_argument("--stemsplit-args", default="", help="extra flags for stemsplit separate, e.g. "
                    "\"--model FILE.onnx --segment 6\" (a candidate default)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    report: dict = {}
    result = run(report, args.reps, not args.no_long, args.seconds, tuple(args.stemsplit_args.split()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if result["speed_ok"] and result["rss_ok"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
