#!/usr/bin/env python3
"""Turn a folder made by research/gpu/pack_dataset.py back into a prepared dataset.

    python3 research/gpu/unpack_dataset.py .gpu/musdb7 /tmp/musdb7

Runs on the lent GPU machine, which has torch but neither ffmpeg nor stemsplit's install:
soundfile (carried as a wheel) decodes the Opus at 48 kHz, torchaudio resamples it to the
dataset's rate, and the stems are stored as the int16 arrays with per-part scales that
stemsplit's reader expects. A train track's mixture is the sum of its stems. The reader takes
each part's scale from dataset.json, so the new scales are written there too: the packed copy
carries the original int16's scales, and a silent stem (scale 1.0) that decodes to faint noise
would otherwise come back at full scale, thousands of times louder than the mixture.
"""
from __future__ import annotations

import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


def decode(path: Path, sample_rate: int, length: int) -> np.ndarray:
    """Opus file -> (channels, length) float32 at ``sample_rate``."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = torch.from_numpy(data.T.copy())
    if rate != sample_rate:
        audio = AF.resample(audio, rate, sample_rate)
    out = np.zeros((audio.shape[0], length), dtype=np.float32)
    n = min(length, audio.shape[1])
    out[:, :n] = audio[:, :n].numpy()
    return out


def store(audio: np.ndarray, path: Path) -> float:
    """Save as int16 with the scale that turns it back into float audio."""
    peak = float(np.abs(audio).max(initial=0.0))
    scale = peak / 32767.0 if peak > 0 else 1.0
    np.save(path, np.round(audio / scale).astype(np.int16))
    return scale


def unpack_track(args: tuple[Path, Path, list[str], int]) -> tuple[str, dict[str, float]]:
    """One packed track folder -> (track name, the scales of its stored parts)."""
    src, dst, stems, sample_rate = args
    track = json.loads((src / "track.json").read_text())
    dst.mkdir(parents=True, exist_ok=True)
    scales, total = {}, None
    for name in stems:
        audio = decode(src / f"{name}.opus", sample_rate, track["length"])
        scales[name] = store(audio, dst / f"{name}.npy")
        total = audio if total is None else total + audio
    mix_file = src / "mixture.opus"
    mixture = decode(mix_file, sample_rate, track["length"]) if mix_file.exists() else total
    scales["mixture"] = store(mixture, dst / "mixture.npy")
    track["scales"] = scales
    (dst / "track.json").write_text(json.dumps(track, indent=1))
    return track["name"], scales


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    meta = json.loads((src / "dataset.json").read_text())
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    if (src / "stats").is_dir():
        shutil.copytree(src / "stats", dst / "stats")
    jobs = [(t.parent, dst / t.parent.relative_to(src), list(meta["stems"]), meta["sample_rate"])
            for t in sorted(src.glob("tracks/*/track.json"))]
    torch.set_num_threads(1)
    with ProcessPoolExecutor(max_workers=8) as pool:
        for name, scales in pool.map(unpack_track, jobs):
            meta["tracks"][name]["scales"] = scales
    (dst / "dataset.json").write_text(json.dumps(meta, indent=1))
    print(f"unpacked {len(jobs)} tracks into {dst}", flush=True)


if __name__ == "__main__":
    main()
