"""The listening report's content: which tracks get a player, their audio and pictures, and the
numbers beside them. ``html_report`` turns it into the page.

Scores come from the evaluation that just ran (``EvaluationReport``): nothing is scored again.
The audio of the estimates is not kept while scoring (a 50-track run would hold gigabytes), so
the few tracks that get a player are separated once more here, each method loaded once, and
written as compressed audio with a spectrogram picture per source.

Output: ``<out>/report.html`` and its files in ``<out>/report/``. Everything is built in a
hidden folder beside them and swapped in at the end, so a failed run leaves the previous
report as it was.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stemsplit.atomic import write_bytes_atomic, write_text_atomic
from stemsplit.audio.encode import check_encoder, encode_compressed, suffix_for
from stemsplit.audio.io import AudioError
from stemsplit.evaluation import EvaluationError
from stemsplit.evaluation.html_report import render_page
from stemsplit.evaluation.listening_page import Clip, ListeningPage, SourceSet, TrackPlayer
from stemsplit.evaluation.methods import MODEL, ORACLE, MethodSpec, produce_estimates
from stemsplit.evaluation.reports import EvaluationReport
from stemsplit.evaluation.runner import load_reference
from stemsplit.evaluation.spectrogram_images import write_colour_scale_png, write_spectrogram_png
from stemsplit.metrics import GSDR
from stemsplit.separation.oracle import MIXTURE, ORACLE_IRM_MAG

ASSETS = "report"  # the folder beside report.html; page links are relative to it


@dataclass(frozen=True)
class HtmlOptions:
    tracks: int = 10  # players for the N tracks with the widest spread between methods
    codec: str = "opus"  # opus (.webm) or aac (.m4a)
    bitrate: str = "64k"
    workers: int = 1  # files encoded and drawn at once (ffmpeg runs in its own process)


def check_options(options: HtmlOptions) -> None:
    """One-line EvaluationError for a bad option or a missing encoder, before any work."""
    if isinstance(options.tracks, bool) or not isinstance(options.tracks, int) or options.tracks < 1:
        raise EvaluationError(f"--html-tracks {options.tracks!r}: must be a whole number of at least 1")
    try:
        check_encoder(options.codec, options.bitrate)
    except AudioError as exc:
        raise EvaluationError(f"--html: {exc}") from None


def headline_metric(report: EvaluationReport) -> str:
    return "SDR" if "SDR" in report.metrics else GSDR


def _track_mean(report: EvaluationReport, method: str, track: str, metric: str) -> float:
    result = report.results.get(method, {}).get(track)
    if result is None:
        return math.nan
    values = result.track_values()
    finite = [values[(s, metric)] for s in report.stems if math.isfinite(values.get((s, metric), math.nan))]
    return sum(finite) / len(finite) if finite else math.nan


def track_spreads(report: EvaluationReport) -> dict[str, float]:
    """Per track: best minus worst mean-over-stems score among the compared methods.

    Compared: the methods that are not oracles when there are two or more of them (the
    disagreement a listener wants to hear), else every scored method, oracles included.
    """
    metric = headline_metric(report)
    compared = [s.name for s in report.methods if s.kind != ORACLE]
    if len(compared) < 2:
        compared = [s.name for s in report.methods]
    spreads = {}
    for track in report.tracks:
        values = [v for m in compared if math.isfinite(v := _track_mean(report, m, track, metric))]
        spreads[track] = max(values) - min(values) if len(values) >= 2 else (0.0 if values else math.nan)
    return spreads


def pick_tracks(report: EvaluationReport, n: int) -> list[tuple[str, float]]:
    """The n tracks with the widest spread, widest first; unscored tracks last, in split order."""
    spreads = track_spreads(report)

    def rank(i: int) -> tuple:
        spread = spreads[report.tracks[i]]
        return (0, -spread, i) if math.isfinite(spread) else (1, 0.0, i)

    return [(report.tracks[i], spreads[report.tracks[i]]) for i in sorted(range(len(report.tracks)), key=rank)[:n]]


def separation_speed(report: EvaluationReport, sample_rate: int) -> dict[str, float]:
    """Per model: median over tracks of audio seconds per second of separation, as the scoring
    workers measured it (``extra['separate_seconds']``); models scored before that was recorded
    have none."""
    out = {}
    for spec in report.methods:
        if spec.kind != MODEL:
            continue
        rates = [r.validity["length"] / sample_rate / r.extra["separate_seconds"]
                 for r in report.results.get(spec.name, {}).values()
                 if r.extra.get("separate_seconds") and r.validity.get("length")]
        if rates:
            out[spec.name] = statistics.median(rates)
    return out


def headroom_closed(report: EvaluationReport) -> dict[str, dict[str, float]]:
    """(method - mixture) / (oracle-irm-mag - mixture) on each metric's stem mean: the share of
    the way from doing nothing to the best magnitude ratio mask. Empty without the oracle rows."""
    out: dict[str, dict[str, float]] = {}
    for metric in (m for m in ("SDR", GSDR) if m in report.metrics):
        floor, limit = report.value(MIXTURE, "mean", metric), report.value(ORACLE_IRM_MAG, "mean", metric)
        if not (math.isfinite(floor) and math.isfinite(limit)) or limit <= floor:
            continue
        for spec in report.methods:
            if spec.kind != ORACLE and math.isfinite(value := report.value(spec.name, "mean", metric)):
                out.setdefault(spec.name, {})[metric] = (value - floor) / (limit - floor)
    return out


# --- building the files -------------------------------------------------------------------------


def _in_player(spec: MethodSpec) -> bool:
    """The mixture row is the player's own mixture: as every stem's estimate it adds nothing to hear."""
    return not (spec.kind == ORACLE and spec.source == MIXTURE)


class _Assets:
    """Writes sources' audio and pictures into the staging folder and returns their page URLs."""

    def __init__(self, staging: Path, options: HtmlOptions, sample_rate: int, pool: ThreadPoolExecutor):
        self.staging, self.options, self.sample_rate, self.pool = staging, options, sample_rate, pool
        self.suffix = suffix_for(options.codec)

    def _write(self, audio, folder: str, name: str) -> None:
        encode_compressed(audio, self.sample_rate, self.staging / folder / f"{name}{self.suffix}",
                          self.options.codec, self.options.bitrate)
        write_spectrogram_png(audio, self.sample_rate, self.staging / folder / f"{name}.png")

    def clips(self, items: list[tuple[str, object, str, str, dict[str, float]]]) -> list[Clip]:
        """(label, audio (channels, time), folder, file name, scores) per source, written in parallel;
        returns when all are on disk (so at most one source set's audio is held at a time)."""
        jobs = [self.pool.submit(self._write, audio, folder, name) for _label, audio, folder, name, _s in items]
        for job in jobs:
            job.result()  # re-raises the first failure
        return [Clip(label, f"{ASSETS}/{folder}/{name}{self.suffix}", f"{ASSETS}/{folder}/{name}.png", scores)
                for label, _audio, folder, name, scores in items]


def _scores(report: EvaluationReport, method: str, track: str, stem: str) -> dict[str, float]:
    result = report.results.get(method, {}).get(track)
    if result is None:
        return {}
    values = result.track_values()
    return {m: values[(stem, m)] for m in ("SDR", GSDR) if (stem, m) in values}


def build_players(report: EvaluationReport, dataset, picks: list[tuple[str, float]], staging: Path,
                  options: HtmlOptions, say=None) -> list[TrackPlayer]:
    """Audio, pictures and scores of every source of each picked track, written under ``staging``."""
    import torch

    # --workers N means N cores: the models and oracles run here, in this process, on as many threads
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(options.workers, threads)))
    try:
        with ThreadPoolExecutor(max(1, options.workers)) as pool:
            return _build_players(report, dataset, picks, _Assets(staging, options, dataset.sample_rate, pool), say)
    finally:
        torch.set_num_threads(threads)


def _build_players(report: EvaluationReport, dataset, picks: list[tuple[str, float]], assets: _Assets,
                   say) -> list[TrackPlayer]:
    sr, stems, metric = dataset.sample_rate, report.stems, headline_metric(report)
    players: dict[str, TrackPlayer] = {}
    for i, (track, spread) in enumerate(picks):
        if say:
            say(f"listening report: track {i + 1}/{len(picks)}, {track}: mixture and reference stems")
        mixture, sources = load_reference(dataset, track, stems)
        folder = f"t{i:02d}"
        mix, *refs = assets.clips([("mixture", mixture, folder, "mix", {})]
                                  + [(stem, sources[k], folder, f"ref-{k}", {}) for k, stem in enumerate(stems)])
        players[track] = TrackPlayer(track, mixture.shape[-1] / sr, spread, [
            SourceSet("mix", "mixture", "mixture", [mix]), SourceSet("ref", "reference stems", "reference", refs)])
    # methods outside, tracks inside: each model is loaded once
    for m, spec in enumerate(s for s in report.methods if _in_player(s)):
        if say:
            say(f"listening report: {spec.name}: separating {len(picks)} track(s) again for the players")
        for i, (track, _spread) in enumerate(picks):
            player = players[track]
            try:
                mixture, sources = load_reference(dataset, track, stems)
                estimates = produce_estimates(spec, track, mixture, sources, sr)
                clips = assets.clips([(stem, estimates[k], f"t{i:02d}", f"m{m}-{k}",
                                       _scores(report, spec.name, track, stem)) for k, stem in enumerate(stems)])
            except Exception as exc:  # one method failing on one track leaves the rest of the page
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                player.notes.append(f"{spec.name}: left out ({text})")
                report.errors.append(f"{spec.name} / {track}: listening report: {text}")
                continue
            player.sources.append(SourceSet(f"m{m}", spec.name, spec.kind, clips,
                                            _track_mean(report, spec.name, track, metric)))
    return [players[track] for track, _ in picks]


def _remove_stale_folders(out: Path) -> None:
    """Staging or old report folders left by a killed run: ``.report.<pid>-<random>.tmp|.old``
    whose process is gone. A live run's folders are left alone."""
    for folder in out.glob(f".{ASSETS}.*-*.*"):
        match = re.fullmatch(rf"\.{ASSETS}\.(\d+)-[0-9a-f]{{8}}\.(tmp|old)", folder.name)
        if match is None or not folder.is_dir():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # its writer still runs
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OverflowError):
            continue  # someone else's process, or not a pid at all


def write_listening_report(report: EvaluationReport, dataset, out: Path, options: HtmlOptions,
                           say=None) -> dict[str, Path]:
    """Write ``out/report.html`` and ``out/report/``; returns their paths by kind."""
    check_options(options)
    out = Path(out)
    _remove_stale_folders(out)
    staging = out / f".{ASSETS}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir(parents=True)
    try:
        picks = pick_tracks(report, options.tracks)
        players = build_players(report, dataset, picks, staging, options, say)
        boxplot = None
        if report.files.get("boxplot"):
            write_bytes_atomic(staging / "sdr_boxplot.png", Path(report.files["boxplot"]).read_bytes())
            boxplot = f"{ASSETS}/sdr_boxplot.png"
        write_colour_scale_png(staging / "colour_scale.png")
        page = ListeningPage(report=report, metric=headline_metric(report), players=players,
                             speed=separation_speed(report, dataset.sample_rate), headroom=headroom_closed(report),
                             boxplot=boxplot, colour_scale=f"{ASSETS}/colour_scale.png", codec=options.codec,
                             bitrate=options.bitrate)
        html = render_page(page)
        final, old = out / ASSETS, None
        if final.exists():
            old = out / f".{ASSETS}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old"
            final.rename(old)
        staging.rename(final)
        write_text_atomic(out / "report.html", html)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"html": out / "report.html", "html_assets": out / ASSETS}
