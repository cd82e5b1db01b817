"""Separation speed and memory: `stemsplit separate` run as a user runs it, in a subprocess.

For each architecture (random weights at the configured size): wall time for a 3-minute
stereo 44.1 kHz file (four stems, 16-bit wav out, 2 threads), its real-time factor, and the
peak RSS of the whole process for 1-minute and 30-minute inputs.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stemsplit.audio.io import AudioWriter  # noqa: E402
from stemsplit.models import names  # noqa: E402

# every registered family that has a config, with random weights
ARCHS = tuple(n for n in names() if (ROOT / "configs" / f"{n}.yaml").is_file())
SR = 44100


def make_song(path: Path, seconds: int) -> Path:
    """Tones, a beat and noise, written block by block (a 30-minute file never sits in RAM)."""
    rng = np.random.default_rng(0)
    with AudioWriter(path, SR, 2, "PCM_16") as w:
        for start in range(0, seconds):
            t = np.arange(SR) / SR + start
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
            beat = 0.3 * np.exp(-30 * (t % 0.5)) * rng.standard_normal(SR)
            block = np.stack([tone + beat, 0.8 * tone + beat]) + 0.02 * rng.standard_normal((2, SR))
            w.write(block.astype(np.float32))
    return path


# Linux keeps ru_maxrss across fork and exec: a child started straight from this process would
# report at least this process's own peak (hundreds of MB once torch or decoded stems are in
# memory here). A small launcher (python -S, a few MB) starts the separation instead and
# reports its child's wall time, peak RSS and exit code.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_separate(ckpt: Path | str, song: Path, out: Path, extra: tuple[str, ...] = (),
                 python: str = sys.executable, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one `stemsplit separate` process; ``extra`` flags (e.g.
    --runtime onnx), another venv's ``python``, and a ``cwd`` outside the repo for that venv."""
    cmd = [python, "-m", "stemsplit", "separate", str(song), "--model", str(ckpt),
           "-o", str(out), "--jobs", "2", "--device", "cpu", *extra]
    proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd], capture_output=True, text=True, cwd=cwd)
    fields = proc.stdout.split()
    if proc.returncode != 0 or len(fields) != 3 or fields[2] != "0":
        raise RuntimeError(f"separate failed on {song}: {proc.stderr.strip()[-300:]}")
    return float(fields[0]), int(fields[1]) / 1024


def run(report: dict, checkpoints: dict[str, Path | str] | None = None, label: str = "random weights") -> None:
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-") as tmp:
        tmp = Path(tmp)
        songs = {m: make_song(tmp / f"song_{m}min.wav", m * 60) for m in (1, 3, 30)}
        if checkpoints is None:
            checkpoints = {}
            for arch in ARCHS:
                ckpt = tmp / f"{arch}.ckpt"
                subprocess.run([sys.executable, str(ROOT / "scripts" / "init_checkpoint.py"),
                                str(ROOT / "configs" / f"{arch}.yaml"), str(ckpt)], check=True,
                               stdout=subprocess.DEVNULL)
                checkpoints[arch] = ckpt
        rows = {}
        for name, ckpt in checkpoints.items():
            wall3, _ = run_separate(ckpt, songs[3], tmp / "out")
            _, rss1 = run_separate(ckpt, songs[1], tmp / "out")
            _, rss30 = run_separate(ckpt, songs[30], tmp / "out")
            rows[name] = {"wall_3min_s": round(wall3, 2), "x_realtime": round(180 / wall3, 1),
                          "peak_rss_1min_mb": round(rss1), "peak_rss_30min_mb": round(rss30),
                          "rss_growth_mb": round(rss30 - rss1)}
            print(f"  {name:10s} 3-min: {wall3:6.2f} s ({180 / wall3:5.1f}x real time)   "
                  f"peak RSS 1-min {rss1:6.0f} MB, 30-min {rss30:6.0f} MB (+{rss30 - rss1:.0f} MB)", flush=True)
    report[f"separate ({label})"] = rows
