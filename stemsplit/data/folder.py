"""Folder datasets: any folder of track folders, each holding one audio file per stem.

Two layouts are read::

    ROOT/<track>/{vocals,drums,bass,other}.wav [+ mixture.wav]          splits drawn at random
    ROOT/{train,valid,test}/<track>/{vocals,...}.wav [+ mixture.wav]    splits from the folders
                                                                        (MUSDB18-HQ layout)

A stem file is matched by its name without extension, case-insensitively (``Vocals.flac``
is the vocals stem); any format ``stemsplit.audio.io`` reads works. ``mixture`` (or ``mix``)
is used when present and is the sum of the stems otherwise. Tracks that fail the checks in
``checks.py`` are reported and left out.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemsplit.audio.io import AudioError, is_audio_path, read_audio
from stemsplit.data.cache import DataError
from stemsplit.data.checks import CheckOptions, TrackCheck, check_audio
from stemsplit.data.sources import LoadedTrack, SourceTrack, hash_files

SPLIT_FOLDERS = ("train", "valid", "test")
MIXTURE_NAMES = ("mixture", "mix")


@dataclass
class FolderTrack:
    name: str
    folder: Path
    split: str | None  # None: drawn by assign_splits
    files: dict[str, list[Path]]  # part name ("mixture" or a stem) -> matching files


def _scan_track(folder: Path, stems: list[str]) -> dict[str, list[Path]] | None:
    """Matching files per part, or None when the folder holds no audio at all."""
    audio = [p for p in sorted(folder.iterdir()) if p.is_file() and is_audio_path(p)]
    if not audio:
        return None
    files: dict[str, list[Path]] = {}
    for path in audio:
        base = path.name[: -len(path.suffix)].lower()
        part = "mixture" if base in MIXTURE_NAMES else base
        if part in stems or part == "mixture":
            files.setdefault(part, []).append(path)
    return files


def _track_dirs(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def discover_folder(root: Path, stems: list[str]) -> list[FolderTrack]:
    """Every track folder under ``root`` (split folders first if present). DataError if none."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: is a file; give the folder that holds one folder per track")
    split_dirs = [root / s for s in SPLIT_FOLDERS if (root / s).is_dir()]
    groups = [(d.name, d) for d in split_dirs] if split_dirs else [(None, root)]
    tracks: list[FolderTrack] = []
    seen: set[str] = set()
    for split, parent in groups:
        for folder in _track_dirs(parent):
            files = _scan_track(folder, stems)
            if files is None:
                continue
            name = folder.name if folder.name not in seen else f"{split}/{folder.name}"
            seen.add(name)
            tracks.append(FolderTrack(name, folder, split, files))
    if not tracks:
        example = "/".join(["<track>", "{" + ",".join(stems) + "}.wav"])
        raise DataError(f"{root}: no track folders with audio found (expected {root}/{example}, "
                        f"optionally inside train/, valid/ and test/ folders)")
    return tracks


def assign_splits(tracks: list[FolderTrack], valid_fraction: float, seed: int,
                  valid_tracks: tuple[str, ...] = ()) -> dict[str, str]:
    """track name -> split. Tracks under split folders keep theirs. ``valid_tracks`` names the
    tracks of the valid split outright (songs held out of training); otherwise, with no valid/
    folder, a random ``valid_fraction`` of the train tracks (at least one, when there are two or
    more) becomes the valid split."""
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"--valid-fraction {valid_fraction}: must be in [0, 1)")
    splits = {t.name: t.split or "train" for t in tracks}
    if valid_tracks:
        unknown = [n for n in valid_tracks if n not in splits]
        if unknown:
            raise DataError(f"--valid-tracks: no track folder named {unknown[0]!r}; the tracks are: "
                            f"{', '.join(sorted(splits))}")
        return {n: "valid" if n in valid_tracks else s for n, s in splits.items()}
    if any(t.split == "valid" for t in tracks) or valid_fraction == 0:
        return splits
    train = sorted(n for n, s in splits.items() if s == "train")
    n_valid = round(len(train) * valid_fraction)
    if len(train) >= 2:
        n_valid = min(max(n_valid, 1), len(train) - 1)
    for name in random.Random(seed).sample(train, n_valid):
        splits[name] = "valid"
    return splits


def _load(track: FolderTrack, stems: list[str], options: CheckOptions, check: TrackCheck) -> LoadedTrack | None:
    missing = [s for s in stems if s not in track.files]
    if missing:
        check.problems.append(f"missing stems: {', '.join(missing)}")
    doubles = [f"{part} ({', '.join(p.name for p in paths)})" for part, paths in track.files.items() if len(paths) > 1]
    if doubles:
        check.problems.append(f"more than one file for {'; '.join(doubles)}")
    if check.problems:
        return None
    audio: dict[str, np.ndarray] = {}
    rates: dict[str, int] = {}
    for part, (path,) in track.files.items():
        try:
            audio[part], rates[part] = read_audio(path)
        except AudioError as exc:
            check.problems.append(f"unreadable: {exc}")
    if check.problems:
        return None
    if len(set(rates.values())) > 1:
        check.problems.append("sample rates differ: " + ", ".join(f"{p} {r}" for p, r in rates.items()))
    lengths = {p: a.shape[1] for p, a in audio.items()}
    if len(set(lengths.values())) > 1:
        check.problems.append("lengths differ: " + ", ".join(f"{p} {n}" for p, n in lengths.items()) + " samples")
    channels = {p: a.shape[0] for p, a in audio.items()}
    if len(set(channels.values())) > 1:
        check.problems.append("channel counts differ: " + ", ".join(f"{p} {c}" for p, c in channels.items()))
    if check.problems:
        return None
    rate = next(iter(rates.values()))
    check.seconds = next(iter(lengths.values())) / rate
    mixture = audio.pop("mixture", None)
    check_audio(check, audio, mixture, options)
    return LoadedTrack(audio, mixture, rate) if check.ok else None


def folder_tracks(root: Path, stems: list[str], valid_fraction: float, seed: int,
                  options: CheckOptions, valid_tracks: tuple[str, ...] = ()) -> list[SourceTrack]:
    """The tracks of a folder dataset, ready for ``prepare``."""
    found = discover_folder(root, stems)
    splits = assign_splits(found, valid_fraction, seed, valid_tracks)
    out = []
    for track in found:
        parts = sorted((part, paths[0]) for part, paths in track.files.items())
        out.append(SourceTrack(
            name=track.name, split=splits[track.name], source=str(track.folder),
            content_hash=lambda parts=parts: hash_files(parts),
            load=lambda check, track=track: _load(track, stems, options, check)))
    return out
