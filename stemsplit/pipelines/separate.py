"""`stemsplit separate`: files and folders in, stem files out.

One bad file never stops the batch: it is reported, the rest are separated, and the
summary lists every failure so the CLI can exit non-zero. Each file goes through the same
``Separator`` (pipelines/separator.py) that the Python API gives people.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stemsplit.audio.io import AudioError, DiskFullError, is_audio_path
from stemsplit.errors import CheckpointError
from stemsplit.pipelines.output_paths import (
    OUTPUT_MARKER,
    TEMPLATE_KEYS,
    SeparateError,
    check_template,
    is_output_folder,
    plan_outputs,
    prepare_output_folder,
    track_name,
)
from stemsplit.pipelines.separate_file import output_names
from stemsplit.pipelines.separator import MAX_JOBS, Separator, check_output_options, check_threads
from stemsplit.settings import EngineSettings

__all__ = ["MAX_JOBS", "OUTPUT_MARKER", "TEMPLATE_KEYS", "SeparateError", "SeparateRequest", "BatchSummary",
           "SeparateUI", "check_template", "track_name", "discover", "parse_shard", "run_separate"]


@dataclass
class SeparateRequest:
    inputs: list[Path]
    out_dir: Path = Path("separated")
    filename: str = "{model}/{track}/{stem}.{ext}"
    model: str | None = None
    stems: list[str] | None = None
    residual: bool = False
    fmt: str = "wav"
    bits: int = 16
    clip: str = "rescale"
    engine: EngineSettings = field(default_factory=EngineSettings)
    runtime: str = "auto"  # auto | torch | onnx (stemsplit.resolver picks for auto)
    jobs: int | None = None
    skip_existing: bool = False
    shard: tuple[int, int] | None = None  # (index, count), index from 1


@dataclass
class BatchSummary:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


class SeparateUI(Protocol):
    def batch_started(self, n_files: int) -> None: ...
    def file_started(self, path: Path, n_segments: int) -> None: ...
    def segment_done(self, path: Path, done: int) -> None: ...
    def file_finished(self, path: Path, ok: bool, message: str) -> None: ...
    def message(self, text: str) -> None: ...
    def download(self, event) -> None: ...  # a public model's first download (stemsplit.hub.fetch.FetchEvent)
    def model_ready(self, name: str, runtime: str) -> None: ...  # resolved and loaded, before any file


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SeparateError(f"--shard {text!r}: expected i/N, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise SeparateError(f"--shard {text!r}: i must be between 1 and N")
    return i, n


def discover(inputs: list[Path], out_dir: Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Audio files from files and folders (walked recursively), plus inputs that don't exist.

    The walk skips stemsplit's output folders: ``out_dir`` and every folder marked as one
    (``OUTPUT_MARKER``), so stems are never taken for songs; a folder given that is one is
    refused with the reason. Files given by name are taken wherever they are."""
    files, missing = [], []
    for item in inputs:
        if item.is_dir():
            if is_output_folder(item, out_dir):
                missing.append((item, f"{item}: a stemsplit output folder, whose audio files are stems, not songs; "
                                      "give the files themselves to separate them again"))
                continue
            found = _songs_in(item, out_dir)
            if not found:
                missing.append((item, f"{item}: no audio files in this folder (wav, flac, mp3, ogg, m4a, "
                                      "opus, ...); give a folder of songs or the files themselves"))
            files += found
        elif item.exists():
            files.append(item)
        else:
            missing.append((item, f"{item}: file not found"))
    seen, unique = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, missing


def _songs_in(folder: Path, out_dir: Path | None) -> list[Path]:
    """The audio files under ``folder``, sorted, leaving out output folders (links to folders are not followed)."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not is_output_folder(Path(top) / d, out_dir)]
        found += [p for p in (Path(top) / n for n in names) if p.is_file() and is_audio_path(p)]
    return sorted(found)


def _validate(req: SeparateRequest) -> str:
    """Every option checked before anything loads (--runtime with --device: resolve's first step);
    returns the output subtype."""
    subtype = check_output_options(req.fmt, req.bits, req.clip, req.filename)
    req.engine.checked()
    check_threads(req.jobs)
    out = req.out_dir.resolve()
    walked = next((item for item in req.inputs if item.is_dir() and item.resolve() == out), None)
    if walked is not None:
        raise SeparateError(f"-o {req.out_dir} is the folder being separated ({walked}): its stems would be taken "
                            "for songs next time; choose another -o, e.g. a subfolder (the default, separated/)")
    return subtype


def run_separate(req: SeparateRequest, ui: SeparateUI) -> BatchSummary:
    """Separate every input file; raises SeparateError/CheckpointError only before any work, and
    DiskFullError when the output device is full (the files finished before it are kept)."""
    subtype = _validate(req)
    separator = Separator.from_settings(req.model, req.engine, req.runtime, req.jobs, events=ui.download)
    stems = separator.check_stems(req.stems)
    ui.model_ready(separator.model_name, separator.runtime)
    prepare_output_folder(req.out_dir)
    model_name = separator.model_name
    names = output_names(separator.stems, stems, req.residual)

    files, missing = discover(req.inputs, req.out_dir)
    if req.shard:
        i, n = req.shard
        files = files[i - 1 :: n]
    summary = BatchSummary(failed=list(missing))
    for path, msg in missing:
        ui.file_finished(path, False, msg)
    claimed: dict[Path, Path] = {}
    ui.batch_started(len(files))
    start = time.perf_counter()
    for index, path in enumerate(files):
        try:
            targets = plan_outputs(req.out_dir, req.filename, path, model_name, req.fmt, names)
        except SeparateError as exc:  # a path that resolves outside -o: this file only
            summary.failed.append((path, str(exc)))
            ui.file_finished(path, False, str(exc))
            continue
        clash = next((claimed[t] for t in targets.values() if t in claimed), None)
        if clash is not None:
            msg = (f"{path}: its outputs would overwrite those of {clash}; "
                   "use --filename with a different layout or rename one file")
            summary.failed.append((path, msg))
            ui.file_finished(path, False, msg)
            continue
        claimed.update({t: path for t in targets.values()})
        if req.skip_existing and all(t.exists() for t in targets.values()):
            summary.skipped.append(path)
            ui.file_finished(path, True, "skipped (outputs exist)")
            continue
        try:
            ui.file_started(path, separator.num_segments(path))
            segments = itertools.count(1)
            result = separator.write_stems(path, targets, stems, req.residual, subtype, req.clip,
                                           on_segment=lambda _samples, p=path, n=segments: ui.segment_done(p, next(n)),
                                           upcoming=files[index + 1] if index + 1 < len(files) else None)
        except DiskFullError:
            raise  # every later file would fail the same way: stop with one line
        except (AudioError, CheckpointError, ValueError, RuntimeError, OSError) as exc:
            msg = _one_line(path, exc)
            summary.failed.append((path, msg))
            ui.file_finished(path, False, msg)
            continue
        for text in result.messages:
            ui.message(text)
        summary.done.append(path)
        summary.audio_seconds += result.duration
        ui.file_finished(path, True, f"{len(result.outputs)} stems -> {next(iter(targets.values())).parent}")
    summary.seconds = time.perf_counter() - start
    return summary


def _one_line(path: Path, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, named without importing torch
        return f"{path}: out of GPU memory; retry with a smaller --segment or --device cpu"
    return text if str(path) in text else f"{path}: {text}"
