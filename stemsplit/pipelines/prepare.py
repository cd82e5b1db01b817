"""`stemsplit prepare`: MUSDB18 / MUSDB18-HQ, folders of stems, or generated songs -> a prepared cache.

Every variant lists its tracks, then for each one: hash the source files, reuse the cache
entry when the hash is unchanged, otherwise decode, check, resample and store it. A track
that cannot be read or fails a check is reported and left out; the run goes on. A track kept
with a mixture that is not the sum of its stems gets a warning line of its own. A failed
write to the cache (a full disk) stops the run and leaves the previous cache as it was.
``dataset.json`` is written last.

``train`` validates on the ``valid`` split, so where the split is drawn (folders without a
``valid/`` folder, generated songs) a valid split left empty by failed tracks is refilled from
the train tracks that passed, and a dataset with train tracks but no valid one gets a warning.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stemsplit.atomic import write_text_atomic
from stemsplit.audio.io import AudioError, write_audio
from stemsplit.data.cache import CacheWriteError, CacheWriter, DataError, PreparedDataset
from stemsplit.data.checks import CheckOptions, TrackCheck
from stemsplit.data.folder import folder_tracks
from stemsplit.data.musdb import MUSDB_LICENCE, MUSDB_STEMS, musdb_tracks
from stemsplit.data.sources import SourceTrack, conform
from stemsplit.data.synth import GENERATOR_VERSION, SYNTH_STEMS, generate_song


class PrepareReporter(Protocol):
    def stage(self, description: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def message(self, text: str) -> None: ...


class QuietReporter:
    def stage(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass
class PrepareOptions:
    out: Path
    sample_rate: int = 44100
    channels: int = 2
    dtype: str = "int16"
    checks: CheckOptions = field(default_factory=CheckOptions)
    limit: int = 0  # > 0: only the first N tracks of each split (quick trials, tests)
    licence: str = ""  # the data's terms of use, recorded in dataset.json and in models trained on it


@dataclass
class PrepareReport:
    out: Path
    checks: list[TrackCheck]
    splits: dict[str, int]
    added: int = 0
    reused: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[TrackCheck]:
        return [c for c in self.checks if not c.ok]


def _limit(tracks: list[SourceTrack], limit: int) -> list[SourceTrack]:
    if limit <= 0:
        return tracks
    kept, counts = [], {}
    for t in tracks:
        counts[t.split] = counts.get(t.split, 0) + 1
        if counts[t.split] <= limit:
            kept.append(t)
    return kept


def _prepare_one(track: SourceTrack, writer: CacheWriter, options: PrepareOptions) -> tuple[TrackCheck, str]:
    """(what was found, the source's content hash: "" when it could not be read)."""
    check = TrackCheck(track.name, track.split, track.source)
    try:
        source_hash = track.content_hash()
    except OSError as exc:
        check.problems.append(f"unreadable: {track.source}: {exc.strerror or exc}")
        return check, ""
    if writer.has_track(track.name, source_hash, track.split):
        check.reused = True
        return check, source_hash
    loaded = track.load(check)
    if loaded is None:
        if not check.problems:
            check.problems.append("could not be loaded")
        return check, source_hash
    try:
        loaded = conform(loaded, options.sample_rate, options.channels, track.source)
        writer.add_track(track.name, track.split, loaded.stems, loaded.mixture, source_hash, track.source)
    except CacheWriteError:
        raise
    except (DataError, AudioError) as exc:
        check.problems.append(str(exc))
    return check, source_hash


def _refill_valid(checks: list[TrackCheck], hashes: dict[str, str], writer: CacheWriter, seed: int,
                  reporter: PrepareReporter) -> None:
    """A drawn valid split that ended empty (its tracks failed) takes one passing train track."""
    ok = [c for c in checks if c.ok]
    train = sorted(c.name for c in ok if c.split == "train")
    if any(c.split == "valid" for c in ok) or len(train) < 2:
        return
    name = random.Random(seed).choice(train)
    if writer.has_track(name, hashes[name], "valid"):  # the stored entry, relabelled
        next(c for c in ok if c.name == name).split = "valid"
        reporter.message(f"note: every track drawn for the valid split was left out; moved {name} from "
                         "train to valid")


def _warn_no_valid(checks: list[TrackCheck], reporter: PrepareReporter) -> None:
    splits = {c.split for c in checks if c.ok}
    if "train" in splits and "valid" not in splits:
        n = sum(1 for c in checks if c.ok and c.split == "train")
        reporter.message(f"warning: no 'valid' split ({n} train track(s)); 'stemsplit train' validates on it: "
                         "prepare at least 2 tracks with --valid-fraction above 0, or add a valid/ folder of tracks")


def run_prepare(tracks: list[SourceTrack], listing_failures: list[TrackCheck], stems: list[str],
                source: str, options: PrepareOptions, reporter: PrepareReporter | None = None,
                refill_valid_seed: int | None = None) -> PrepareReport:
    """Prepare ``tracks`` into ``options.out``; returns what happened to each track.

    ``refill_valid_seed``: the valid split was drawn (not given by the dataset), so refill it
    from the passing train tracks, with this seed, if it ends up empty."""
    reporter = reporter or QuietReporter()
    started = time.perf_counter()
    tracks = _limit(tracks, options.limit)
    # entries depend on the check options too: a stricter run must check every track again
    settings = json.dumps([dataclasses.asdict(options.checks), options.channels], sort_keys=True)
    writer = CacheWriter(options.out, options.sample_rate, stems, source=source, dtype=options.dtype,
                         settings=settings, licence=options.licence)
    checks = list(listing_failures)
    for failure in listing_failures:
        reporter.message(f"left out {failure.name}: {failure.summary()}")
    reporter.stage("preparing", len(tracks))
    hashes: dict[str, str] = {}
    for track in tracks:
        check, hashes[track.name] = _prepare_one(track, writer, options)
        checks.append(check)
        if not check.ok:
            reporter.message(f"left out {track.name}: {check.summary()}")
        elif check.residual_warning:
            reporter.message(f"warning: {track.name} ({track.split}): {check.residual_warning}; kept: evaluation "
                             "scores it against its stems (--strict leaves it out)")
        reporter.advance()
    if not any(c.ok for c in checks):
        raise DataError(f"{source}: none of the {len(checks)} tracks could be prepared "
                        f"(first problem: {checks[0].summary() if checks else 'no tracks'})")
    if refill_valid_seed is not None:
        _refill_valid(checks, hashes, writer, refill_valid_seed, reporter)
    _warn_no_valid(checks, reporter)
    reporter.stage("magnitude statistics", 1)
    writer.finalize()
    reporter.advance()
    dataset = PreparedDataset(options.out)
    audio = sum(dataset.track_length(n) for names in dataset.splits.values() for n in names)
    return PrepareReport(
        out=Path(options.out), checks=checks, splits={k: len(v) for k, v in dataset.splits.items()},
        added=sum(1 for c in checks if c.ok and not c.reused), reused=sum(1 for c in checks if c.reused),
        seconds=time.perf_counter() - started, audio_seconds=audio / dataset.sample_rate)


def prepare_musdb(root: Path, options: PrepareOptions, is_wav: bool = False,
                  subsets: tuple[str, ...] = ("train", "test"),
                  reporter: PrepareReporter | None = None) -> PrepareReport:
    started = time.perf_counter()
    tracks, failures = musdb_tracks(Path(root), is_wav, options.checks, subsets, options.limit)
    kind = "musdb18hq" if is_wav else "musdb18"
    options = dataclasses.replace(options, licence=options.licence or MUSDB_LICENCE)
    report = run_prepare(tracks, failures, MUSDB_STEMS, f"{kind}:{Path(root).resolve()}", options, reporter)
    report.seconds = time.perf_counter() - started  # listing included: musdb probes every file
    return report


def prepare_folder(root: Path, stems: list[str], options: PrepareOptions, valid_fraction: float = 0.1,
                   seed: int = 0, reporter: PrepareReporter | None = None,
                   valid_tracks: tuple[str, ...] = ()) -> PrepareReport:
    """``valid_tracks``: these track folders form the valid split (held out of training), instead
    of a random ``valid_fraction``."""
    started = time.perf_counter()
    tracks = folder_tracks(Path(root), stems, valid_fraction, seed, options.checks, valid_tracks)
    drawn = valid_fraction > 0 and not valid_tracks
    report = run_prepare(tracks, [], stems, f"folder:{Path(root).resolve()}", options, reporter,
                         refill_valid_seed=seed if drawn else None)
    report.seconds = time.perf_counter() - started
    return report


# --- synth --------------------------------------------------------------------------------------

SYNTH_LICENCE = "generated by stemsplit prepare synth: no third-party audio, no restrictions"
SYNTH_PARAMS = "synth.json"  # per generated track folder: what it was generated from


def _synth_names(tracks: int, seed: int, valid_fraction: float) -> list[tuple[str, str, int]]:
    """[(name, split, index)]: the last round(tracks * valid_fraction) songs form the valid split."""
    n_valid = round(tracks * valid_fraction)
    if valid_fraction > 0 and tracks >= 2:
        n_valid = min(max(n_valid, 1), tracks - 1)
    return [(f"synth-{seed}-{i:04d}", "valid" if i >= tracks - n_valid else "train", i) for i in range(tracks)]


def generate_synth_audio(audio_root: Path, tracks: int, seconds: float, seed: int, valid_fraction: float,
                         sample_rate: int, reporter: PrepareReporter | None = None) -> dict:
    """Write songs as ``audio_root/{train,valid}/<name>/{mixture,vocals,drums,bass,other}.wav``
    (16-bit), reusing folders generated earlier from the same parameters."""
    reporter = reporter or QuietReporter()
    if tracks <= 0 or not (math.isfinite(seconds) and seconds > 0):
        raise DataError(f"--tracks {tracks} / --seconds {seconds}: both must be positive and finite")
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"--valid-fraction {valid_fraction}: must be in [0, 1)")
    names = _synth_names(tracks, seed, valid_fraction)
    wanted = {audio_root / split / name for name, split, _ in names}
    for split in ("train", "valid"):  # folders of an earlier, different corpus
        for folder in (audio_root / split).glob("*/" + SYNTH_PARAMS):
            if folder.parent not in wanted:
                shutil.rmtree(folder.parent, ignore_errors=True)
    reporter.stage("generating songs", len(names))
    generated, started = 0, time.perf_counter()
    for name, split, index in names:
        folder = audio_root / split / name
        params = {"generator": GENERATOR_VERSION, "seed": seed, "index": index, "seconds": seconds,
                  "sample_rate": sample_rate}
        done = folder / SYNTH_PARAMS
        try:
            fresh = json.loads(done.read_text()).get("params") != params
        except (OSError, ValueError):
            fresh = True
        if fresh or not all((folder / f"{p}.wav").is_file() for p in ["mixture", *SYNTH_STEMS]):
            song = generate_song(seed, index, seconds, sample_rate)
            try:
                done.unlink(missing_ok=True)
                for part, audio in [("mixture", song.mixture), *song.stems.items()]:
                    write_audio(folder / f"{part}.wav", audio, sample_rate, subtype="PCM_16")
                write_text_atomic(done, json.dumps({"params": params, "song": song.info}, indent=1))
            except (OSError, AudioError) as exc:
                raise CacheWriteError(f"{folder}: could not write the generated song ({exc}); "
                                      "free some space and run again") from None
            generated += 1
        reporter.advance()
    return {"generated": generated, "generate_seconds": time.perf_counter() - started,
            "audio_seconds": tracks * seconds}


def prepare_synth(out: Path, tracks: int, seconds: float, options: PrepareOptions, seed: int = 0,
                  valid_fraction: float = 0.1, reporter: PrepareReporter | None = None) -> PrepareReport:
    """Generate a corpus into ``out/audio`` (MUSDB18-HQ layout) and prepare it into ``out``."""
    started = time.perf_counter()
    audio_root = Path(out) / "audio"
    stats = generate_synth_audio(audio_root, tracks, seconds, seed, valid_fraction, options.sample_rate, reporter)
    found = folder_tracks(audio_root, SYNTH_STEMS, 0.0, seed, options.checks)
    options = dataclasses.replace(options, licence=options.licence or SYNTH_LICENCE)
    report = run_prepare(found, [], SYNTH_STEMS, f"synth:seed={seed},tracks={tracks},seconds={seconds}",
                         options, reporter, refill_valid_seed=seed if valid_fraction > 0 else None)
    report.extra.update(stats)
    report.seconds = time.perf_counter() - started  # generation included
    return report
