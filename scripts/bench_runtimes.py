"""The two runtimes side by side (issue 16): `stemsplit separate` with the default shipped model
on torch and on ONNX Runtime, as whole processes, and the size of each install.

Rows, each a separate `stemsplit separate` process (bench_separate.run_separate: 2 threads, CPU):
  torch            the dev venv, --runtime torch
  onnx             the dev venv, --runtime onnx (torch is installed there but never imported)
  onnx, lean venv  a fresh `pip install stemsplit` venv without extras (no torch on disk at all),
                   made by scripts/check_lean_install.sh, default runtime
Columns: wall time on a generated 3-minute stereo song and its x real time, peak RSS on 1- and
30-minute songs, and how closely the ONNX stems match the torch stems (SDR, stem against stem).

Venv sizes: `pip install stemsplit` is measured (du of the lean venv). `pip install
"stemsplit[train]"` is estimated as the lean venv plus the installed size of every distribution
the train extra adds, read from the dev venv's RECORD files (a fresh one would download ~3 GB of
CUDA wheels); the dev .venv's own du (editable, [train,dev], plus playwright) is printed beside it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf
import tomllib
from bench_separate import ROOT, make_song, run_separate
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

STEMS = ("vocals", "drums", "bass", "other")


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) over the whole file, all channels together."""
    noise = float(np.sum((reference - estimate) ** 2))
    signal = float(np.sum(reference ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(max(signal, 1e-20) / noise))


def stems_sdr(ref_dir: Path, est_dir: Path) -> dict[str, float]:
    """SDR of each stem file in ``est_dir`` against the same-named file in ``ref_dir``."""
    out = {}
    for stem in STEMS:
        ref, _ = sf.read(ref_dir / f"{stem}.wav", dtype="float32")
        est, _ = sf.read(est_dir / f"{stem}.wav", dtype="float32")
        out[stem] = round(_sdr(ref, est), 1)
    return out


def du_mb(path: Path) -> int:
    return int(subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
               .stdout.split()[0])


def lean_venv(where: Path) -> tuple[Path, int]:
    """(venv path, size MB): scripts/check_lean_install.sh --keep, which also checks it separates."""
    venv = where / "lean-venv"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_lean_install.sh"), "--keep", str(venv)],
                          capture_output=True, text=True)
    match = re.search(r"^lean venv: (\d+) MB", proc.stdout, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"check_lean_install.sh failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return venv, int(match.group(1))


def _closure(requirements: list[Requirement], extras: set[str]) -> set[str]:
    """Installed distribution names reached from ``requirements`` (markers evaluated, with
    ``extras`` requested of the first level only)."""
    seen: set[str] = set()
    todo = [(r, extras) for r in requirements]
    while todo:
        req, wanted = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        todo += [(Requirement(r), set(req.extras)) for r in dist.requires or []]
    return seen


def _installed_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        for f in files:
            path = Path(f.locate())
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def train_extra_mb() -> float:
    """MB the [train] extra adds on top of the base install, as installed in this (dev) venv.
    The requirements come from pyproject.toml: an editable install's metadata can be older."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = [Requirement(r) for r in project["dependencies"]]
    train = [Requirement(r) for r in project["optional-dependencies"]["train"]]
    return _installed_mb(_closure(base + train, set()) - _closure(base, set()))


def run(report: dict) -> None:
    from stemsplit.pretrained import registry

    model = registry()["default"]
    rows: dict[str, dict] = {}
    load_before = os.getloadavg()  # the machine may be shared: the figures mean little under load
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-rt-") as tmp:
        tmp = Path(tmp)
        songs = {m: make_song(tmp / f"song_{m}min.wav", m * 60) for m in (1, 3, 30)}
        venv, lean_mb = lean_venv(tmp)
        cases = {"torch": (("--runtime", "torch"), sys.executable, None),
                 "onnx": (("--runtime", "onnx"), sys.executable, None),
                 "onnx, lean venv": ((), str(venv / "bin" / "python"), tmp)}  # cwd outside the repo
        for name, (extra, python, cwd) in cases.items():
            out3 = tmp / f"out-{len(rows)}"
            wall3, _ = run_separate(model, songs[3], out3, extra, python, cwd)
            _, rss1 = run_separate(model, songs[1], tmp / "out", extra, python, cwd)
            _, rss30 = run_separate(model, songs[30], tmp / "out", extra, python, cwd)
            row = {"wall_3min_s": round(wall3, 2), "x_realtime": round(180 / wall3, 1),
                   "peak_rss_1min_mb": round(rss1), "peak_rss_30min_mb": round(rss30),
                   "rss_growth_mb": round(rss30 - rss1)}
            if rows:  # stems against the torch row's, the same 3-minute song
                sdr = stems_sdr(tmp / "out-0" / model / "song_3min", out3 / model / "song_3min")
                row["sdr_vs_torch_db"] = sdr
            rows[name] = row
            match = f"   SDR vs torch {min(row['sdr_vs_torch_db'].values()):.1f} dB (worst stem)" \
                if "sdr_vs_torch_db" in row else ""
            print(f"  {name:16s} 3-min: {wall3:6.2f} s ({180 / wall3:5.1f}x real time)   peak RSS 1-min "
                  f"{rss1:5.0f} MB, 30-min {rss30:5.0f} MB (+{rss30 - rss1:.0f} MB){match}", flush=True)
    dev_mb = du_mb(ROOT / ".venv") if (ROOT / ".venv").is_dir() else None
    train_mb = round(lean_mb + train_extra_mb())
    sizes = {"pip install stemsplit (measured, fresh venv)": lean_mb,
             "pip install stemsplit[train] (lean venv + the extra's distributions from the dev venv)": train_mb,
             "dev .venv (editable [train,dev] + playwright, measured)": dev_mb}
    for label, mb in sizes.items():
        print(f"  venv {label}: {mb} MB", flush=True)
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    print(f"  load average (1/5/15 min) before {load['before']}, after {load['after']}", flush=True)
    report[f"runtimes ({model}, default model)"] = {"rows": rows, "venv_mb": sizes, "load_average": load}
