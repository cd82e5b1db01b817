"""Report files written into ``--out``.

- ``summary.csv``: ``model,stem,metric,value`` with the median over tracks (stem ``mean``:
  the average of the per-stem medians). Metrics: ``gsdr``, ``SDR``, ``SIR``, ``ISR``, ``SAR``.
- ``summary.md``: one table of models by stems per metric.
- ``tracks.csv``: ``model,track,stem,metric,value``, one value per track (BSS Eval: median
  over frames).
- ``scores.json``: settings, methods, summary, per-track values and errors.
- ``museval/<model>/<split>/<track>.json``: museval's own per-track frame scores.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemsplit.atomic import write_json_atomic, write_text_atomic
from stemsplit.evaluation.methods import MethodSpec
from stemsplit.evaluation.store import TrackResult, safe_name
from stemsplit.metrics import MEAN_STEM, aggregate, museval_track_json


@dataclass
class EvaluationReport:
    """Everything a run produced; ``summary[(model, stem, metric)]`` is the median over tracks."""

    methods: list[MethodSpec]
    stems: list[str]
    split: str
    results: dict[str, dict[str, TrackResult]]  # model -> track -> result
    tracks: list[str]
    metrics: list[str]  # the metric names present, in ALL_METRICS order
    errors: list[str] = field(default_factory=list)
    summary: dict[tuple[str, str, str], float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def track_rows(self) -> list[tuple[str, str, str, str, float]]:
        """``(model, track, stem, metric, value)`` in report order."""
        rows = []
        for spec in self.methods:
            for track in self.tracks:
                result = self.results.get(spec.name, {}).get(track)
                if result is None:
                    continue
                values = result.track_values()
                for stem in self.stems:
                    for metric in self.metrics:
                        if (stem, metric) in values:
                            rows.append((spec.name, track, stem, metric, values[(stem, metric)]))
        return rows

    def summarize(self) -> None:
        self.summary = aggregate(self.track_rows(), self.stems)

    def value(self, model: str, stem: str, metric: str) -> float:
        return self.summary.get((model, stem, metric), float("nan"))

    def scored_models(self) -> list[str]:
        return [s.name for s in self.methods if self.results.get(s.name)]

    def scored_tracks(self) -> list[str]:
        """The split's tracks that every scored method has a score for: what the medians cover
        when the methods agree (each row's own count is in its ``tracks`` column)."""
        models = self.scored_models()
        return [t for t in self.tracks if models and all(t in self.results[m] for m in models)]

    def not_scored(self) -> dict[str, list[str]]:
        """track -> the methods with no score for it (an error, a missing estimate), in split order."""
        out: dict[str, list[str]] = {}
        for track in self.tracks:
            missing = [s.name for s in self.methods if track not in self.results.get(s.name, {})]
            if missing:
                out[track] = missing
        return out

    def tracks_label(self) -> str:
        """``14 'test' tracks``, or ``11 of 14 'test' tracks`` when some were not scored."""
        n, scored = len(self.tracks), len(self.scored_tracks())
        return f"{n} '{self.split}' tracks" if scored == n else f"{scored} of {n} '{self.split}' tracks"


def _fmt(value: float, digits: int = 2) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def summary_csv(report: EvaluationReport) -> str:
    rows = []
    for model in report.scored_models():
        for stem in [*report.stems, MEAN_STEM]:
            for metric in report.metrics:
                rows.append([model, stem, metric, _fmt(report.value(model, stem, metric), 4)])
    return _csv(["model", "stem", "metric", "value"], rows)


def tracks_csv(report: EvaluationReport) -> str:
    rows = [[m, t, s, k, _fmt(v, 4)] for m, t, s, k, v in report.track_rows()]
    return _csv(["model", "track", "stem", "metric", "value"], rows)


def summary_markdown(report: EvaluationReport) -> str:
    models = report.scored_models()
    n, scored = len(report.tracks), len(report.scored_tracks())
    count = f"{n} tracks" if scored == n else f"{scored} of {n} tracks scored"
    lines = [f"# Evaluation on split `{report.split}` ({count})", "",
             "Median over tracks of each track's score (BSS Eval: median over 1-second frames), "
             "in dB; `mean` is the average of the stem medians; `tracks` is how many tracks each row "
             "covers.", ""]
    names = {"gsdr": "Global SDR (gsdr, MDX)", "SDR": "SDR (BSS Eval v4)", "SIR": "SIR", "ISR": "ISR",
             "SAR": "SAR"}
    cols = [*report.stems, MEAN_STEM]
    for metric in report.metrics:
        lines += [f"## {names[metric]}", "", "| model | " + " | ".join(cols) + " | tracks |",
                  "|---|" + "---:|" * (len(cols) + 1)]
        for model in models:
            cells = [_fmt(report.value(model, s, metric)) for s in cols]
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {len(report.results[model])} |")
        lines.append("")
    missing = report.not_scored()
    if missing:
        lines += [f"## Tracks not scored ({len(missing)} of {n})", "",
                  *[f"- {track}: {', '.join(methods)}" for track, methods in missing.items()], ""]
    if report.errors:
        lines += ["## Errors", "", *[f"- {e}" for e in report.errors], ""]
    return "\n".join(lines)


def scores_json(report: EvaluationReport) -> dict:
    def clean(v: float) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    summary: dict[str, dict] = {}
    for (model, stem, metric), value in report.summary.items():
        summary.setdefault(model, {}).setdefault(stem, {})[metric] = clean(value)
    per_track: dict[str, dict] = {}
    for model, track, stem, metric, value in report.track_rows():
        per_track.setdefault(model, {}).setdefault(track, {}).setdefault(stem, {})[metric] = clean(value)
    missing = report.not_scored()
    methods = [{"name": s.name, "kind": s.kind, "source": s.source, "key": s.key,
                "tracks": len(report.results.get(s.name, {})),
                "tracks_not_scored": [t for t, names in missing.items() if s.name in names], **s.info}
               for s in report.methods]
    return {"split": report.split, "stems": report.stems, "metrics": report.metrics,
            "aggregation": "median over frames, then median over tracks; mean = average of stem medians",
            "tracks": report.tracks, "tracks_scored": report.scored_tracks(), "tracks_not_scored": missing,
            "methods": methods, "summary": summary, "per_track": per_track, "errors": report.errors}


def write_reports(report: EvaluationReport, out: Path) -> dict[str, Path]:
    """Write every report file (each atomically) and return their paths by kind."""
    out = Path(out)
    files = {"summary_csv": out / "summary.csv", "summary_md": out / "summary.md",
             "tracks_csv": out / "tracks.csv", "scores_json": out / "scores.json"}
    write_text_atomic(files["summary_csv"], summary_csv(report))
    write_text_atomic(files["summary_md"], summary_markdown(report))
    write_text_atomic(files["tracks_csv"], tracks_csv(report))
    write_json_atomic(files["scores_json"], scores_json(report))
    for model, per_track in report.results.items():
        for track, result in per_track.items():
            if result.frames is None:
                continue
            path = out / "museval" / safe_name(model) / safe_name(report.split) / f"{safe_name(track)}.json"
            write_text_atomic(path, museval_track_json(track, result.frames, result.win_seconds,
                                                        result.hop_seconds))
    if any(r.frames is not None for per in report.results.values() for r in per.values()):
        files["museval_dir"] = out / "museval"
    return files


def read_summary_csv(path: Path) -> dict[tuple[str, str, str], float]:
    """``summary.csv`` back into ``{(model, stem, metric): value}``."""
    with open(path, newline="") as fh:
        return {(r["model"], r["stem"], r["metric"]): float(r["value"]) for r in csv.DictReader(fh)}

