#!/usr/bin/env python3
"""Pack a prepared dataset small enough to travel to a lent GPU machine (64 MiB per call).

    research/gpu/pack_dataset.py /work/data/musdb7 .gpu/musdb7 [--bitrate 112k] [--max-seconds 90]

A prepared dataset stores int16 stems (about 5.6 MB per 7-second track): 94 tracks are 540 MB,
far over what one call carries. This writes each stem (and each valid track's mixture) as
Ogg Opus at ``--bitrate`` through ffmpeg, beside the dataset's own JSON files and input
statistics; research/gpu/unpack_dataset.py turns it back into a prepared dataset there.
Opus is near-transparent at 112 kb/s for one stem, and MUSDB's stems are AAC already: a
model trained on the unpacked copy is validated again here on the original data.
``--max-seconds`` keeps only that much from the middle of each longer track, for datasets of
whole songs (the multitracks' 40 minutes are 98 MB even as Opus).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np


def encode(audio: np.ndarray, sample_rate: int, path: Path, bitrate: str) -> None:
    """(channels, time) float32 -> Ogg Opus file at 48 kHz."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "f32le", "-ar", str(sample_rate), "-ac", str(audio.shape[0]),
           "-i", "pipe:0", "-c:a", "libopus", "-b:a", bitrate, "-ar", "48000", str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(audio.T, dtype=np.float32).tobytes(), check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--bitrate", default="112k")
    ap.add_argument("--max-seconds", type=float, default=0.0, help="crop longer tracks to their middle")
    args = ap.parse_args()
    meta = json.loads((args.dataset / "dataset.json").read_text())
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    if (args.dataset / "stats").is_dir():
        shutil.copytree(args.dataset / "stats", args.out / "stats")
    sr = meta["sample_rate"]
    for track_json in sorted((args.dataset / "tracks").glob("*/track.json")):
        track = json.loads(track_json.read_text())
        src = track_json.parent
        keep = int(args.max_seconds * sr) if args.max_seconds > 0 else track["length"]
        start = max(0, (track["length"] - keep) // 2)
        track["length"] = meta["tracks"][track["name"]]["length"] = min(keep, track["length"])
        dst = args.out / track["dir"]
        dst.mkdir(parents=True)
        (dst / "track.json").write_text(json.dumps(track, indent=1))
        names = list(meta["stems"]) + (["mixture"] if track["split"] != "train" else [])
        for name in names:
            audio = np.load(src / f"{name}.npy", mmap_mode="r")
            audio = audio.reshape(track["channels"], -1) if audio.shape[0] != track["channels"] else audio
            audio = audio[:, start:start + track["length"]].astype(np.float32) * track["scales"][name]
            encode(audio, sr, dst / f"{name}.opus", args.bitrate)
    (args.out / "dataset.json").write_text(json.dumps(meta, indent=1))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"packed {args.dataset} -> {args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
