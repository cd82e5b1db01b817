"""What ``evaluate`` scores, and how each produces one track's estimates.

A ``MethodSpec`` is plain data (it crosses into worker processes):

- ``model``: a checkpoint path or shipped model name, separated by the chunked engine
  (``torch_engine(...).separate``), exactly as ``separate --runtime torch`` does.
- ``estimates``: a folder already separated, ``DIR/<track>/<stem>.wav`` (any audio type).
- ``oracle``: an oracle mask or the mixture, from the true stems (``separation.oracle``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stemsplit.audio.io import audio_info, is_audio_path, read_audio
from stemsplit.evaluation import EvaluationError
from stemsplit.settings import EngineSettings

MODEL, ESTIMATES, ORACLE = "model", "estimates", "oracle"


@dataclass
class MethodSpec:
    name: str  # the row name in every report
    kind: str  # MODEL | ESTIMATES | ORACLE
    source: str  # checkpoint path or shipped name | estimates folder | oracle method
    key: str  # cache key: a hash of everything that decides the estimates
    stems: list[str]  # in the dataset's order
    engine: EngineSettings = field(default_factory=EngineSettings)  # models: flags and device
    stft: tuple[int, int] = (4096, 1024)  # oracles: (n_fft, hop_length)
    info: dict[str, Any] = field(default_factory=dict)  # shown in scores.json


def hash_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_key(checkpoint_hash: str, engine: EngineSettings) -> str:
    return hash_key({"kind": MODEL, "checkpoint": checkpoint_hash, "engine": engine.cache_fields()})


def estimates_key(folder: Path) -> str:
    return hash_key({"kind": ESTIMATES, "folder": str(folder.resolve())})


def oracle_key(method: str, n_fft: int, hop: int) -> str:
    payload = {"kind": ORACLE, "method": method}
    if method != "mixture":  # the mixture does not depend on the STFT
        payload.update(n_fft=n_fft, hop=hop)
    return hash_key(payload)


# --- estimates folders ------------------------------------------------------------------------


def estimate_files(folder: Path, track: str, stems: list[str]) -> dict[str, Path]:
    """``{stem: file}`` for one track of an estimates folder; EvaluationError names what is missing."""
    track_dir = folder / track
    if not track_dir.is_dir():
        raise EvaluationError(f"{folder}: no folder for track {track!r}; expected {track_dir}/<stem>.wav")
    found = {}
    for stem in stems:
        candidates = sorted(p for p in track_dir.glob(f"{stem}.*") if is_audio_path(p) and p.stem == stem)
        wav = [p for p in candidates if p.suffix.lower() == ".wav"]
        if not candidates:
            raise EvaluationError(f"{track_dir}: no estimate for stem {stem!r} (expected {stem}.wav)")
        found[stem] = (wav or candidates)[0]
    return found


def estimates_validity(files: dict[str, Path]) -> dict[str, list[int]]:
    """Size and modification time per file: a re-separated folder invalidates the cache."""
    out = {}
    for stem, path in files.items():
        st = path.stat()
        out[stem] = [st.st_size, st.st_mtime_ns]
    return out


def check_estimate_shapes(files: dict[str, Path], length: int, channels: int, sample_rate: int) -> None:
    """Header-only check that each estimate matches the track; one-line EvaluationError if not."""
    for path in files.values():
        info = audio_info(path)
        _check_shape(path, info.sample_rate, info.channels, info.frames, length, channels, sample_rate)


def _check_shape(path: Path, sr: int, channels: int, frames: int, length: int, want_channels: int,
                 want_sr: int) -> None:
    if sr != want_sr:
        raise EvaluationError(f"{path}: sample rate {sr} Hz, the dataset is at {want_sr} Hz; "
                              "resample the estimates to the dataset's rate")
    if channels != want_channels:
        raise EvaluationError(f"{path}: {channels} channel(s), the reference has {want_channels}")
    if frames != length:
        raise EvaluationError(f"{path}: {frames} samples, but the track has {length}; "
                              "estimates must be exactly as long as the mixture")


def load_estimates(files: dict[str, Path], stems: list[str], length: int, channels: int,
                   sample_rate: int) -> np.ndarray:
    """(stems, channels, time) float32 from the files, checked against the track."""
    out = np.empty((len(stems), channels, length), np.float32)
    for i, stem in enumerate(stems):
        data, sr = read_audio(files[stem])
        _check_shape(files[stem], sr, data.shape[0], data.shape[1], length, channels, sample_rate)
        out[i] = data
    return out


# --- producing estimates in a worker ----------------------------------------------------------

_SEPARATORS: dict[tuple, Any] = {}  # per process: (source, engine) -> (Engine, model stems)


def _separator(spec: MethodSpec):
    cache_key = (spec.source, spec.engine)
    if cache_key not in _SEPARATORS:
        from stemsplit.resolver import resolve
        from stemsplit.separation.engine import Engine

        _SEPARATORS.clear()  # one model at a time per worker keeps memory bounded
        model = resolve(spec.source, runtime="torch", device=spec.engine.device)
        _SEPARATORS[cache_key] = (Engine(model.runner, spec.engine), model.stems)
    return _SEPARATORS[cache_key]


def produce_estimates(spec: MethodSpec, track: str, mixture: np.ndarray, sources: np.ndarray,
                      sample_rate: int, data_root: Path | None = None) -> np.ndarray:
    """One track's estimates (stems, channels, time) float32, stems in ``spec.stems`` order.

    mixture: (channels, time); sources: (stems, channels, time), the true stems.
    """
    if spec.kind == ORACLE:
        from stemsplit.config import STFTConfig
        from stemsplit.separation.oracle import oracle_estimates

        n_fft, hop = spec.stft
        return oracle_estimates(spec.source, mixture, sources, STFTConfig(n_fft=n_fft, hop_length=hop))
    if spec.kind == ESTIMATES:
        files = estimate_files(Path(spec.source), track, spec.stems)
        return load_estimates(files, spec.stems, mixture.shape[1], mixture.shape[0], sample_rate)
    if spec.kind == MODEL:
        separator, model_stems = _separator(spec)
        out = separator.separate(mixture)
        order = [model_stems.index(s) for s in spec.stems]
        return out[order]
    raise ValueError(f"unknown method kind {spec.kind!r}")
