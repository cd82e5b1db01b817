"""What every dataset source hands to ``prepare``: a list of tracks that can hash and load themselves.

A ``SourceTrack`` is cheap to list; its ``content_hash`` reads the source files (to decide
whether the cache entry is still good) and its ``load`` decodes them. ``conform`` brings the
decoded audio to the cache's sample rate and channel count.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemsplit.audio.convert import resample
from stemsplit.data.cache import DataError
from stemsplit.data.checks import TrackCheck


@dataclass
class LoadedTrack:
    stems: dict[str, np.ndarray]  # (channels, time) float32 at sample_rate
    mixture: np.ndarray | None  # None: the cache stores the sum of the stems
    sample_rate: int


@dataclass
class SourceTrack:
    name: str
    split: str
    source: str  # what to show people: a path
    content_hash: Callable[[], str]
    load: Callable[[TrackCheck], LoadedTrack | None]  # None: ``check.problems`` says why


def hash_files(paths: list[tuple[str, Path]]) -> str:
    """sha256 over (label, file content) pairs: changes when any file's bytes or role change."""
    digest = hashlib.sha256()
    for label, path in paths:
        digest.update(label.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _channels(audio: np.ndarray, channels: int, where: str) -> np.ndarray:
    if audio.shape[0] == channels:
        return audio
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    raise DataError(f"{where}: has {audio.shape[0]} channels; only mono and stereo are supported")


def conform(track: LoadedTrack, sample_rate: int, channels: int, where: str) -> LoadedTrack:
    """Resample and fix the channel count of every part of a loaded track.

    Resampling is ``stemsplit.audio.convert.resample``, the filter ``separate`` streams through,
    so a file prepared for training and the same file fed to ``separate`` reach the model with
    the same samples (``separate`` runs that filter block by block).
    """
    parts = dict(track.stems)
    if track.mixture is not None:
        parts["\0mixture"] = track.mixture
    names = list(parts)
    audio = np.stack([_channels(parts[n], channels, where) for n in names])
    if track.sample_rate != sample_rate:
        audio = resample(audio, track.sample_rate, sample_rate)
    out = dict(zip(names, audio.astype(np.float32, copy=False)))
    mixture = out.pop("\0mixture", None)
    return LoadedTrack(out, mixture, sample_rate)
