"""MUSDB18 (``.stem.mp4``) and MUSDB18-HQ (wav folders) through the ``musdb`` package.

This is the project's only ``musdb`` import. musdb supplies the track list and the official
splits: ``train`` (86 tracks in the full set), ``valid`` (the 14 tracks of musdb's validation
list, taken out of train) and ``test`` (50). A root holding only ``train/`` or only ``test/``
gives only those splits. ``.stem.mp4`` files are decoded by musdb (stempeg and ffmpeg) once,
at prepare time; HQ wav files are read with ``stemsplit.audio.io``.

musdb probes every file when it lists a root, so one damaged file would stop the listing;
when that happens each file is probed on its own, the damaged ones are reported, and the
rest are listed through a folder of links that leaves them out.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from stemsplit.audio.io import AudioError, audio_info, read_audio
from stemsplit.data.cache import DataError
from stemsplit.data.checks import CheckOptions, TrackCheck, check_audio
from stemsplit.data.sources import LoadedTrack, SourceTrack, hash_files

MUSDB_LICENCE = "MUSDB18: academic, non-commercial use only (sigsep.github.io/datasets/musdb.html)"

MUSDB_STEMS = ["vocals", "drums", "bass", "other"]
_HQ_FILES = ["mixture", *MUSDB_STEMS]


@contextmanager
def _probe_once():
    """musdb probes a .stem.mp4 once per stream (five ffprobe runs a track); remember the answers."""
    import stempeg

    original = stempeg.Info
    seen: dict[str, object] = {}

    def cached(filename):
        key = str(filename)
        if key not in seen:
            seen[key] = original(filename)
        return seen[key]

    stempeg.Info = cached
    try:
        yield
    finally:
        stempeg.Info = original


def _db_tracks(root: Path, subset: str, split: str | None, is_wav: bool) -> list:
    import musdb  # the one place in stemsplit that imports it

    with _probe_once():
        return list(musdb.DB(root=str(root), subsets=subset, split=split, is_wav=is_wav))


def _validation_names() -> set[str]:
    import musdb
    import yaml

    setup = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    return set(yaml.safe_load(setup.read_text())["validation_tracks"])


def _entries(root: Path, subset: str, is_wav: bool) -> list[Path]:
    folder = root / subset
    if is_wav:
        return [p for p in sorted(folder.iterdir()) if p.is_dir()]
    return [p for p in sorted(folder.iterdir()) if p.name.endswith(".stem.mp4")]


def _entry_name(entry: Path) -> str:
    return entry.name.removesuffix(".stem.mp4")


def _probe_bad(entries: list[Path], is_wav: bool) -> dict[Path, str]:
    """Entries that cannot be probed, with the reason."""
    bad = {}
    for entry in entries:
        files = [entry / f"{n}.wav" for n in _HQ_FILES if (entry / f"{n}.wav").exists()] if is_wav else [entry]
        for path in files:
            try:
                audio_info(path)
            except AudioError as exc:
                bad[entry] = str(exc)
                break
    return bad


def _relink(track, entry: Path, is_wav: bool) -> None:
    """Point a track listed through the folder of links back at the real files."""
    if is_wav:
        track.path = str(entry / Path(track.path).name)
        for source in track.sources.values():
            source.path = str(entry / Path(source.path).name)
    else:
        track.path = str(entry)
        for source in track.sources.values():
            source.path = str(entry)


def _list_through_links(root: Path, subset: str, entries: list[Path], is_wav: bool) -> list[tuple[str, object]]:
    splits = ("train", "valid") if subset == "train" else (None,)
    by_name = {e.name: e for e in entries}
    with tempfile.TemporaryDirectory(prefix="stemsplit-musdb-") as tmp:
        (Path(tmp) / subset).mkdir()
        for entry in entries:
            os.symlink(entry.resolve(), Path(tmp) / subset / entry.name)
        try:
            listed = [(split or subset, t) for split in splits for t in _db_tracks(Path(tmp), subset, split, is_wav)]
        except Exception as exc:
            raise DataError(f"{root / subset}: musdb could not list the tracks ({exc})") from None
    for _, track in listed:
        name = Path(track.path).parent.name if is_wav else Path(track.path).name
        _relink(track, by_name[name], is_wav)
    return listed


def _list_subset(root: Path, subset: str, is_wav: bool, limit: int,
                 failures: list[TrackCheck]) -> list[tuple[str, object]]:
    """[(split, musdb track)] for one subset folder; only the first ``limit`` per split when > 0."""
    entries = _entries(root, subset, is_wav)
    if limit > 0:  # pick the entries first, so that musdb only probes those
        valid = _validation_names() if subset == "train" else set()
        groups = [[e for e in entries if _entry_name(e) in valid], [e for e in entries if _entry_name(e) not in valid]]
        entries = [e for group in groups for e in group[:limit]]
    else:
        splits = ("train", "valid") if subset == "train" else (None,)
        try:
            return [(split or subset, t) for split in splits for t in _db_tracks(root, subset, split, is_wav)]
        except Exception:  # musdb/stempeg raise many kinds on one bad file: find it below
            pass
    try:
        return _list_through_links(root, subset, entries, is_wav)
    except DataError:
        bad = _probe_bad(entries, is_wav)
        if not bad:
            raise
    for entry, reason in bad.items():
        failures.append(TrackCheck(_entry_name(entry), subset, str(entry), problems=[reason]))
    return _list_through_links(root, subset, [e for e in entries if e not in bad], is_wav)


def _load(track, is_wav: bool, options: CheckOptions, check: TrackCheck) -> LoadedTrack | None:
    try:
        if is_wav:
            folder = Path(track.path).parent
            parts = {n: read_audio(folder / f"{n}.wav") for n in _HQ_FILES}
            rates = {r for _, r in parts.values()}
            if len(rates) > 1 or len({a.shape for a, _ in parts.values()}) > 1:
                check.problems.append("the stem files differ in sample rate, length or channels")
                return None
            audio = {n: a for n, (a, _) in parts.items()}
            rate = rates.pop()
        else:
            stacked = np.asarray(track.stems, dtype=np.float32)  # (5, time, channels), one decode
            rate = int(track.rate)
            ids = {"mixture": 0, **{s: track.sources[s].stem_id for s in MUSDB_STEMS}}
            audio = {n: np.ascontiguousarray(stacked[i].T) for n, i in ids.items()}
    except AudioError as exc:
        check.problems.append(f"unreadable: {exc}")
        return None
    except Exception as exc:  # stempeg/ffmpeg failures come in many types
        reason = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        check.problems.append(f"unreadable: {track.path}: {reason}")
        return None
    mixture = audio.pop("mixture")
    check.seconds = mixture.shape[1] / rate
    check_audio(check, audio, mixture, options)
    return LoadedTrack(audio, mixture, rate) if check.ok else None


def _hash(track, is_wav: bool) -> str:
    if is_wav:
        folder = Path(track.path).parent
        return hash_files([(n, folder / f"{n}.wav") for n in _HQ_FILES])
    return hash_files([("stem.mp4", Path(track.path))])


def musdb_tracks(root: Path, is_wav: bool, options: CheckOptions, subsets: tuple[str, ...] = ("train", "test"),
                 limit: int = 0) -> tuple[list[SourceTrack], list[TrackCheck]]:
    """(tracks ready for prepare, files that could not even be listed)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: folder not found; give the MUSDB18 root that holds train/ and test/")
    present = [s for s in subsets if (root / s).is_dir()]
    if not present:
        raise DataError(f"{root}: not a MUSDB18 root (no {' or '.join(s + '/' for s in subsets)} folder inside)")
    failures: list[TrackCheck] = []
    listed = [item for subset in present for item in _list_subset(root, subset, is_wav, limit, failures)]
    if not listed and not failures:
        other = "wav track folders; add --wav" if not is_wav else ".stem.mp4 files; leave out --wav"
        hint = f" (it holds {other})" if any(_entries(root, s, not is_wav) for s in present) else ""
        raise DataError(f"{root}: no MUSDB18 tracks found in {', '.join(present)}{hint}")
    tracks = [SourceTrack(name=t.name, split=split, source=str(t.path if not is_wav else Path(t.path).parent),
                          content_hash=lambda t=t: _hash(t, is_wav),
                          load=lambda check, t=t: _load(t, is_wav, options, check))
              for split, t in listed]
    return tracks, failures
