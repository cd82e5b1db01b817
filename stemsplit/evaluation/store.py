"""One JSON file of scores per (method key, track), written atomically: the resume cache.

Layout under the output folder::

    cache/<method key>/<track>.json

The method key hashes everything that decides the estimates (checkpoint file hash and
engine settings, oracle and STFT settings, estimates folder). Each entry also records a
``validity`` mapping (the track's length, the estimate files' sizes and times...) and is
reused only when that still matches, and only for the metrics it holds.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemsplit.atomic import write_json_atomic
from stemsplit.metrics import BSS_METRICS, GSDR, frame_median

STORE_VERSION = 1
FAST, MUSEVAL = "fast", "museval"  # the two metric families of --metrics


@dataclass
class TrackResult:
    """Scores of one method on one track.

    ``gsdr``: ``{stem: dB}`` when the fast metric was computed; ``frames``:
    ``{stem: {metric: [per-frame dB or None]}}`` when BSS Eval was.
    """

    key: str
    track: str
    stems: list[str]
    validity: dict[str, Any]
    gsdr: dict[str, float] | None = None
    frames: dict[str, dict[str, list[float | None]]] | None = None
    win_seconds: float = 1.0
    hop_seconds: float = 1.0
    seconds: float = 0.0  # time spent producing and scoring the estimates
    extra: dict[str, Any] = field(default_factory=dict)

    def families(self) -> set[str]:
        return ({FAST} if self.gsdr is not None else set()) | ({MUSEVAL} if self.frames is not None else set())

    def track_values(self) -> dict[tuple[str, str], float]:
        """``{(stem, metric): value}``: gsdr, and BSS Eval's median over frames."""
        out: dict[tuple[str, str], float] = {}
        for stem in self.stems:
            if self.gsdr is not None:
                out[(stem, GSDR)] = _num(self.gsdr.get(stem))
            if self.frames is not None:
                for metric in BSS_METRICS:
                    out[(stem, metric)] = frame_median(self.frames.get(stem, {}).get(metric, []))
        return out

    def merged(self, other: TrackResult) -> TrackResult:
        """This result with the metric families it lacks taken from ``other`` (same key/track)."""
        return TrackResult(
            key=self.key, track=self.track, stems=self.stems, validity=self.validity,
            gsdr=self.gsdr if self.gsdr is not None else other.gsdr,
            frames=self.frames if self.frames is not None else other.frames,
            win_seconds=self.win_seconds, hop_seconds=self.hop_seconds,
            seconds=self.seconds, extra={**other.extra, **self.extra})

    def to_json(self) -> dict:
        return {"version": STORE_VERSION, "key": self.key, "track": self.track, "stems": self.stems,
                "validity": self.validity, "gsdr": _clean(self.gsdr), "frames": _clean(self.frames),
                "win_seconds": self.win_seconds, "hop_seconds": self.hop_seconds,
                "seconds": self.seconds, "extra": self.extra}

    @classmethod
    def from_json(cls, raw: dict) -> TrackResult:
        return cls(key=raw["key"], track=raw["track"], stems=list(raw["stems"]),
                   validity=raw.get("validity", {}), gsdr=raw.get("gsdr"), frames=raw.get("frames"),
                   win_seconds=raw.get("win_seconds", 1.0), hop_seconds=raw.get("hop_seconds", 1.0),
                   seconds=raw.get("seconds", 0.0), extra=raw.get("extra", {}))


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _clean(obj: Any) -> Any:
    """NaN/inf -> None so the file is standard JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def safe_name(name: str) -> str:
    """A track or model name usable as one path component."""
    cleaned = name.replace(os.sep, "_").replace("/", "_").replace("\0", "_").strip()
    return ("_" + cleaned) if cleaned.startswith(".") or not cleaned else cleaned



class ScoreStore:
    """The resume cache under ``root`` (normally ``<out>/cache``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str, track: str) -> Path:
        return self.root / key / f"{safe_name(track)}.json"

    def load(self, key: str, track: str, validity: dict[str, Any]) -> TrackResult | None:
        """The stored result if present, readable and still valid; else None."""
        path = self.path(key, track)
        try:
            raw = json.loads(path.read_text())
            result = TrackResult.from_json(raw)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or damaged by something other than us: recompute
        if raw.get("version") != STORE_VERSION or result.key != key or result.track != track:
            return None
        if result.validity != _clean(validity):
            return None
        return result

    def save(self, result: TrackResult) -> Path:
        path = self.path(result.key, result.track)
        write_json_atomic(path, result.to_json(), fsync=True)
        return path
