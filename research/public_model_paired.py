"""stemsplit beside the publishers' own command-line tools, in one paired run: the same generated
song, the same random weights at the published sizes, the whole process of each, alternated.

usage: python research/public_model_paired.py OUT [--seconds 180] [--reps 1] [--only umxhq htdemucs]

  umxhq:    `umx SONG --model FOLDER --niter 1 --no-cuda` against `stemsplit separate --model FOLDER`
            (ONNX Runtime; the conversion is cached by an untimed first run)
  htdemucs: `demucs --repo FOLDER -n bag --shifts 1 -d cpu` against `stemsplit separate --model
            FOLDER/bag.yaml` (torch, the published settings: one shift, 25 % overlap)
Prints wall time, x real time and peak RSS (/usr/bin/time -v) of each run and the ratios.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from public_model_speed import DEMUCS_SOURCES, demucs_bag, make_song, umx_folder

BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one whole process."""
    log = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if log.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{log.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log.stderr)[1]
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
    return seconds, float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log.stderr)[1]) / 1024


def pairs(out: Path, song: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Model -> (the publisher's command, stemsplit's command)."""
    stemsplit = [sys.executable, "-m", "stemsplit", "separate", str(song)]
    umx = umx_folder(out / "models" / "umxhq", 512)
    bag = demucs_bag(out / "models" / "htdemucs", 1, DEMUCS_SOURCES)
    return {
        "umxhq": ([str(BIN / "umx"), str(song), "--model", str(umx), "--targets", "vocals", "drums", "bass", "other",
                   "--niter", "1", "--no-cuda", "--outdir", str(out / "umx"), "--audio-backend", "stempeg"],
                  [*stemsplit, "--model", str(umx), "-o", str(out / "stemsplit-umx")]),
        "htdemucs": ([str(BIN / "demucs"), "--repo", str(bag.parent), "-n", bag.stem, "--shifts", "1", "-d", "cpu",
                      "-o", str(out / "demucs"), str(song)],
                     [*stemsplit, "--model", str(bag), "--device", "cpu", "-o", str(out / "stemsplit-demucs")]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    song = make_song(args.out / "song.wav", args.seconds)
    for name, (reference, ours) in pairs(args.out, song).items():
        if args.only and name not in args.only:
            continue
        if name.startswith("umx"):
            timed([*ours[:-1], str(args.out / "first")])  # converts to ONNX and caches it: not timed
        for rep in range(args.reps):
            ref_wall, ref_rss = timed(reference)
            our_wall, our_rss = timed([*ours[:-1], f"{ours[-1]}-{rep}"])
            print(f"{name} run {rep + 1}: reference {ref_wall:.1f} s ({args.seconds / ref_wall:.2f}x real time, "
                  f"{ref_rss:.0f} MB) | stemsplit {our_wall:.1f} s ({args.seconds / our_wall:.2f}x, {our_rss:.0f} MB)"
                  f" | stemsplit {ref_wall / our_wall:.2f}x faster, {ref_rss / our_rss:.2f}x less memory", flush=True)


if __name__ == "__main__":
    main()
