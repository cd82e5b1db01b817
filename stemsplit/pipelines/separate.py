"""`stemsplit separate`: files and folders in, stem files out.

One bad file never stops the batch: it is reported, the rest are separated, and the
summary lists every failure so the CLI can exit non-zero.
"""
from __future__ import annotations

import itertools
import os
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from stemsplit.audio.convert import CLIP_MODES
from stemsplit.atomic import mkstemp_beside
from stemsplit.audio.io import AudioError, DiskFullError, audio_info, is_audio_path, subtype_for
from stemsplit.checkpoint import CheckpointError
from stemsplit.errors import StemsplitError
from stemsplit.pipelines.separate_file import output_names, separate_file
from stemsplit.pretrained import model_display_name, resolve_model
from stemsplit.separation.engine import Separator
from stemsplit.settings import EngineSettings

TEMPLATE_KEYS = ("model", "track", "stem", "ext")
MAX_JOBS = 1024  # also checked by the CLI (stemsplit.cli.separate) before torch loads


class SeparateError(StemsplitError, ValueError):
    """A request that cannot run at all (bad options, unusable output folder)."""


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


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SeparateError(f"--shard {text!r}: expected i/N, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise SeparateError(f"--shard {text!r}: i must be between 1 and N")
    return i, n


def check_template(template: str) -> None:
    keys = {k for _, k, _, _ in string.Formatter().parse(template) if k is not None}
    unknown = keys - set(TEMPLATE_KEYS)
    if unknown:
        raise SeparateError(f"--filename: unknown field {{{sorted(unknown)[0]}}}; "
                            f"valid fields: {', '.join('{' + k + '}' for k in TEMPLATE_KEYS)}")
    if "stem" not in keys:
        raise SeparateError("--filename must contain {stem}, or every stem would overwrite the last")


def track_name(path: Path) -> str:
    name = path.stem
    return name[: -len(".stem")] if name.endswith(".stem") else name


def discover(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Audio files from files and folders (walked recursively), plus inputs that don't exist."""
    files, missing = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_audio_path(p))
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


def plan_outputs(req: SeparateRequest, path: Path, model_name: str, names: list[str]) -> dict[str, Path]:
    fields = {"model": model_name, "track": track_name(path), "ext": req.fmt}
    return {n: req.out_dir / req.filename.format(stem=n, **fields) for n in names}


def _validate(req: SeparateRequest) -> None:
    if req.clip not in CLIP_MODES:
        raise SeparateError(f"--clip {req.clip!r}: choose one of {', '.join(CLIP_MODES)}")
    subtype_for(req.fmt, req.bits)
    check_template(req.filename)
    req.engine.checked()
    if req.jobs is not None and not 1 <= req.jobs <= MAX_JOBS:
        raise SeparateError(f"--jobs {req.jobs}: must be between 1 and {MAX_JOBS} CPU threads")
    try:
        req.out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = mkstemp_beside(req.out_dir / "write-test")  # unique: runs may share a folder
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SeparateError(f"output folder {req.out_dir} is not writable ({exc.strerror}); "
                            "choose another with -o") from None


def run_separate(req: SeparateRequest, ui: SeparateUI) -> BatchSummary:
    """Separate every input file; raises SeparateError/CheckpointError only before any work, and
    DiskFullError when the output device is full (the files finished before it are kept)."""
    _validate(req)
    if req.jobs is not None:
        torch.set_num_threads(req.jobs)
    loaded = resolve_model(req.model)
    stems = req.stems or loaded.stems
    unknown = [s for s in stems if s not in loaded.stems]
    if unknown:
        raise SeparateError(f"--stems: {unknown[0]!r} is not a stem of this model; "
                            f"it has: {', '.join(loaded.stems)}")
    separator = Separator.from_loaded(loaded, req.engine)
    model_name = model_display_name(req.model)
    names = output_names(loaded.stems, stems, req.residual)
    subtype = subtype_for(req.fmt, req.bits)

    files, missing = discover(req.inputs)
    if req.shard:
        i, n = req.shard
        files = files[i - 1 :: n]
    summary = BatchSummary(failed=list(missing))
    for path, msg in missing:
        ui.file_finished(path, False, msg)
    claimed: dict[Path, Path] = {}
    ui.batch_started(len(files))
    start = time.perf_counter()
    for path in files:
        targets = plan_outputs(req, path, model_name, names)
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
            info = audio_info(path)
            ui.file_started(path, separator.num_segments(
                int(info.frames * separator.sample_rate / max(info.sample_rate, 1))))
            segments = itertools.count(1)
            result = separate_file(path, separator, stems, req.residual, targets, subtype, req.clip,
                                   on_segment=lambda _samples, p=path: ui.segment_done(p, next(segments)))
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
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"{path}: out of GPU memory; retry with a smaller --segment or --device cpu"
    return text if str(path) in text else f"{path}: {text}"
