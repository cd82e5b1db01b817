"""Speed and peak memory of each public catalogue model in `stemsplit separate`, with random
weights at the published sizes (weights do not change the speed), beside the shipped default.

usage: python research/public_model_speed.py OUT [--seconds 60] [--only umxhq htdemucs ...]

Writes each model's files as its publisher does (an open-unmix folder; Demucs .th files and a
bag YAML, through the installed reference packages), a generated stereo song, then times the
whole `stemsplit separate` process under /usr/bin/time -v. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

STEMS = ["vocals", "drums", "bass", "other"]
DEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]


def umx_folder(folder: Path, hidden: int) -> Path:
    """An open-unmix model folder (<target>.pth, <target>.json, separator.json) at UMX-HQ's/UMX-L's size."""
    from openunmix.model import OpenUnmix

    folder.mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate(STEMS):
        torch.manual_seed(seed)
        net = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=hidden, max_bin=1487)
        torch.save(net.state_dict(), folder / f"{stem}.pth")
        args = {"nfft": 4096, "nhop": 1024, "hidden_size": hidden, "nb_channels": 2, "bandwidth": 16000,
                "target": stem}
        (folder / f"{stem}.json").write_text(json.dumps({"args": args}))
    (folder / "separator.json").write_text(json.dumps({"nfft": 4096, "nhop": 1024, "sample_rate": 44100,
                                                       "nb_channels": 2}))
    return folder


def demucs_bag(folder: Path, members: int, sources: list[str]) -> Path:
    """A Demucs bag YAML beside ``members`` signed .th files of the published htdemucs size."""
    import yaml
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    folder.mkdir(parents=True, exist_ok=True)
    sigs = []
    for i in range(members):
        torch.manual_seed(i)
        model = HTDemucs(sources=sources, samplerate=44100, segment=Fraction(39, 5), channels=48, depth=4,
                         nfft=4096, dconv_mode=3, bottom_channels=512, t_layers=5, t_heads=8)
        args, kwargs = model._init_args_kwargs
        sig = f"{i:08x}"
        save_with_checksum({"klass": model.__class__, "args": args, "kwargs": kwargs,
                            "state": get_state(model, None, half=True)}, folder / f"{sig}.th")
        sigs.append(sig)
    bag = {"models": sigs}
    if members > 1:  # htdemucs_ft: each fine-tuned network makes one stem
        bag["weights"] = [[1.0 if j == i else 0.0 for j in range(len(sources))] for i in range(members)]
    (folder / "bag.yaml").write_text(yaml.safe_dump(bag))
    return folder / "bag.yaml"


MODELS = {
    "umxhq": lambda out: umx_folder(out / "umxhq", 512),
    "umxl": lambda out: umx_folder(out / "umxl", 1024),
    "htdemucs": lambda out: demucs_bag(out / "htdemucs", 1, DEMUCS_SOURCES),
    "htdemucs_ft": lambda out: demucs_bag(out / "htdemucs_ft", 4, DEMUCS_SOURCES),
    "htdemucs_6s": lambda out: demucs_bag(out / "htdemucs_6s", 1, [*DEMUCS_SOURCES, "guitar", "piano"]),
}


def make_song(path: Path, seconds: int) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(seconds * 44100) / 44100
    tones = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((110, 220, 330, 440), 1))
    audio = 0.1 * tones[:, None] + 0.02 * rng.standard_normal((t.size, 2))
    sf.write(path, audio.astype(np.float32), 44100, subtype="PCM_16")
    return path


def timed_separate(model: str, song: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of the whole `stemsplit separate` process."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "stemsplit", "separate", str(song), "-o", str(out)]
    cmd += [] if model == "default" else ["--model", model]
    log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log)[1]
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
    rss_kb = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)[1])
    return seconds, rss_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    song = make_song(args.out / "song.wav", args.seconds)
    rows = []
    for name in ["default", *(args.only or MODELS)]:
        model = "default" if name == "default" else str(MODELS[name](args.out / "models"))
        if name.startswith("umx"):  # the first use converts to ONNX and caches it: time a cached run
            timed_separate(model, song, args.out / "stems" / f"{name}-first")
        wall, rss = timed_separate(model, song, args.out / "stems" / name)
        rows.append((name, wall, args.seconds / wall, rss))
        print(f"{name}: {wall:.1f} s, {args.seconds / wall:.1f}x real time, {rss:.0f} MB", flush=True)
    print(f"\n| model | wall ({args.seconds}-s song) | x real time | peak RSS |\n|---|---:|---:|---:|")
    for name, wall, speed, rss in rows:
        print(f"| {name} | {wall:.1f} s | {speed:.1f} | {rss:.0f} MB |")


if __name__ == "__main__":
    main()
