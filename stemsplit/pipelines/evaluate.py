"""`stemsplit evaluate`: score models, folders of estimates and oracles on a prepared split.

Plan -> run -> report:

1. Check everything that can be checked before any work (split, checkpoints, stems, sample
   rates, estimates folders and file lengths); whole-run problems raise one-line errors.
2. Reuse every cached (method key, track) score that is still valid; run the rest in
   parallel (``evaluation.runner``), each written to the cache as soon as it is done.
3. Aggregate (median over frames, then over tracks) and write the reports into ``out``.

A bad (method, track) item is reported in ``EvaluationReport.errors`` and the others go on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stemsplit.evaluation import EvaluationError
from stemsplit.evaluation.boxplot import write_boxplot
from stemsplit.evaluation.listening import HtmlOptions, write_listening_report
from stemsplit.evaluation.listening import check_options as check_html_options
from stemsplit.evaluation.methods import (
    ESTIMATES,
    MODEL,
    ORACLE,
    MethodSpec,
    check_estimate_shapes,
    estimate_files,
    estimates_key,
    estimates_validity,
    model_key,
    oracle_key,
)
from stemsplit.evaluation.reports import EvaluationReport, write_reports
from stemsplit.evaluation.runner import Job, Outcome, run_jobs
from stemsplit.evaluation.store import FAST, MUSEVAL, ScoreStore, TrackResult
from stemsplit.metrics import ALL_METRICS, BSS_METRICS, GSDR
from stemsplit.separation.oracle import ORACLE_METHODS
from stemsplit.settings import EngineSettings, pick_device

METRIC_CHOICES = {"fast": (FAST,), "museval": (MUSEVAL,), "both": (FAST, MUSEVAL)}
DEFAULT_STFT = (4096, 1024)


@dataclass
class EvaluateRequest:
    data: Path
    split: str = "test"
    models: list[str] = field(default_factory=list)  # checkpoint paths or shipped names
    estimates: list[Path] = field(default_factory=list)  # folders DIR/<track>/<stem>.wav
    oracle: bool = False
    metrics: str = "both"  # fast | museval | both
    out: Path = Path("eval")
    workers: int | None = None  # None: the CPU count
    stft_n_fft: int | None = None  # oracles; None: the first model's, else 4096
    stft_hop: int | None = None  # oracles; None: the first model's, else 1024
    engine: EngineSettings = field(default_factory=EngineSettings)  # the device too
    limit: int | None = None  # only the first N tracks of the split
    html: bool = False  # also write report.html, the listening report (evaluation.listening)
    html_tracks: int = 10  # players for the N tracks where the methods disagree most


class EvaluateUI(Protocol):
    def planned(self, n_jobs: int, n_cached: int) -> None: ...
    def job_done(self, outcome: Outcome) -> None: ...
    def message(self, text: str) -> None: ...


# --- planning ------------------------------------------------------------------------------------


def _unique(name: str, taken: set[str], alternative: str | None = None) -> str:
    if name not in taken:
        return name
    if alternative and alternative not in taken:
        return alternative
    i = 2
    while f"{name}-{i}" in taken:
        i += 1
    return f"{name}-{i}"


def _model_spec(source: str, dataset, req: EvaluateRequest, taken: set[str]) -> tuple[MethodSpec, tuple]:
    from stemsplit.resolver import resolve

    # CheckpointError for missing/unknown/corrupt; a public model is downloaded here, once
    model = resolve(source, runtime="torch", device=req.engine.device)
    where = f"model {source!r}"
    if sorted(model.stems) != sorted(dataset.stems):
        raise EvaluationError(f"{where} separates {model.stems} but dataset {dataset.root} has stems "
                              f"{dataset.stems}; evaluate it on a dataset with the same stems")
    if model.sample_rate != dataset.sample_rate:
        raise EvaluationError(f"{where} runs at {model.sample_rate} Hz but dataset {dataset.root} is at "
                              f"{dataset.sample_rate} Hz; prepare the dataset at the model's rate")
    if model.config.audio.channels != dataset.channels:
        raise EvaluationError(f"{where} takes {model.config.audio.channels} channel(s) but dataset "
                              f"{dataset.root} has {dataset.channels}")
    first = next(iter(model.files.values()))
    name = _unique(model.name, taken, f"{first.parent.name}-{first.stem}")
    digest = model.fingerprint()
    spec = MethodSpec(name=name, kind=MODEL, source=source, key=model_key(digest, req.engine),
                      stems=list(dataset.stems), engine=req.engine,
                      info={"checkpoint": " ".join(str(p) for p in model.files.values()),
                            "checkpoint_sha256": digest, "architecture": model.architecture})
    stft = (model.config.stft.n_fft, model.config.stft.hop_length)
    return spec, stft


def plan_methods(req: EvaluateRequest, dataset) -> list[MethodSpec]:
    """Every method to score, in table order: models, estimates folders, then oracles."""
    specs: list[MethodSpec] = []
    taken: set[str] = set(ORACLE_METHODS) if req.oracle else set()
    first_stft = None
    for source in req.models:
        spec, stft = _model_spec(str(source), dataset, req, taken)
        first_stft = first_stft or stft
        specs.append(spec)
        taken.add(spec.name)
    for folder in req.estimates:
        folder = Path(folder)
        if not folder.is_dir():
            raise EvaluationError(f"--estimates {folder}: folder not found; expected DIR/<track>/<stem>.wav")
        name = _unique(folder.resolve().name, taken, f"{folder.resolve().parent.name}-{folder.resolve().name}")
        specs.append(MethodSpec(name=name, kind=ESTIMATES, source=str(folder.resolve()),
                                key=estimates_key(folder), stems=list(dataset.stems),
                                info={"folder": str(folder.resolve())}))
        taken.add(name)
    if req.oracle:
        n_fft = req.stft_n_fft or (first_stft or DEFAULT_STFT)[0]
        hop = req.stft_hop or (first_stft or DEFAULT_STFT)[1]
        if n_fft < 16 or not 0 < hop <= n_fft:
            raise EvaluationError(f"oracle STFT n_fft={n_fft}, hop={hop}: need n_fft >= 16 and 0 < hop <= n_fft")
        for method in ORACLE_METHODS:
            info = {} if method == "mixture" else {"n_fft": n_fft, "hop_length": hop}
            specs.append(MethodSpec(name=method, kind=ORACLE, source=method, key=oracle_key(method, n_fft, hop),
                                    stems=list(dataset.stems), stft=(n_fft, hop), info=info))
    if not specs:
        raise EvaluationError("nothing to evaluate: pass --model, --estimates or --oracle")
    return specs


def _validity(spec: MethodSpec, dataset, track: str) -> dict:
    """What a cached entry must still match; checks estimate files (EvaluationError if bad)."""
    length = dataset.track_length(track)
    validity = {"length": length, "sample_rate": dataset.sample_rate}
    if spec.kind == ESTIMATES:
        files = estimate_files(Path(spec.source), track, spec.stems)
        check_estimate_shapes(files, length, dataset.channels, dataset.sample_rate)
        validity["files"] = estimates_validity(files)
    return validity


# --- the run ------------------------------------------------------------------------------------


def evaluate(req: EvaluateRequest, ui: EvaluateUI | None = None) -> EvaluationReport:
    """Run a whole evaluation and write its reports; see the module docstring."""
    from stemsplit.data.cache import PreparedDataset

    if req.metrics not in METRIC_CHOICES:
        raise EvaluationError(f"--metrics {req.metrics!r}: choose one of {', '.join(METRIC_CHOICES)}")
    families = METRIC_CHOICES[req.metrics]
    dataset = PreparedDataset(Path(req.data))  # DataError when it is not a prepared dataset
    tracks = dataset.tracks(req.split)  # DataError listing the valid splits
    if req.limit is not None:
        tracks = tracks[: max(req.limit, 0)]
    if not tracks:
        raise EvaluationError(f"{req.data}: split {req.split!r} has no tracks to evaluate")
    _check_engine(req)
    if req.html:
        check_html_options(HtmlOptions(tracks=req.html_tracks))
    specs = plan_methods(req, dataset)
    out = Path(req.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    store = ScoreStore(out / "cache")

    results: dict[str, dict[str, TrackResult]] = {s.name: {} for s in specs}
    errors: list[str] = []
    jobs: list[Job] = []
    for spec in specs:
        for track in tracks:
            try:
                validity = _validity(spec, dataset, track)
            except EvaluationError as exc:
                errors.append(f"{spec.name} / {track}: {exc}")
                continue
            cached = store.load(spec.key, track, validity)
            if cached is not None and set(families) <= cached.families():
                results[spec.name][track] = cached
                continue
            jobs.append(Job(spec=spec, track=track, data_root=str(dataset.root), families=families,
                            validity=validity, cache_root=str(store.root),
                            previous=cached.to_json() if cached is not None else None))
    if ui:
        ui.planned(len(jobs), sum(len(r) for r in results.values()))

    def collect(outcome: Outcome) -> None:
        if outcome.result is not None:
            results[outcome.method][outcome.track] = outcome.result
        else:
            errors.append(outcome.error or f"{outcome.method} / {outcome.track}: failed")
        if ui:
            ui.job_done(outcome)

    workers = req.workers if req.workers is not None else _default_workers(req)
    run_jobs(jobs, max(1, workers), collect)

    metrics = [m for m in ALL_METRICS if (m == GSDR and FAST in families) or (m in BSS_METRICS and MUSEVAL in families)]
    report = EvaluationReport(methods=specs, stems=list(dataset.stems), split=req.split, results=results,
                              tracks=tracks, metrics=metrics, errors=_ordered(errors, specs))
    report.summarize()
    report.files = write_reports(report, out)
    boxplot = write_boxplot(report, out / "sdr_boxplot.png")
    if boxplot is not None:
        report.files["boxplot"] = boxplot
    if req.html:
        report.files.update(write_listening_report(
            report, dataset, out, HtmlOptions(tracks=req.html_tracks, workers=workers), ui.message if ui else None))
    return report


def _check_engine(req: EvaluateRequest) -> None:
    """The same checks as ``separate``, before any work; the device must exist when models run."""
    req.engine.checked()
    if req.models:
        pick_device(req.engine.device)


def _default_workers(req: EvaluateRequest) -> int:
    """One process per CPU core, but one in all when the models run on a GPU (they would share it)."""
    if req.models and pick_device(req.engine.device).type != "cpu":
        return 1
    return os.cpu_count() or 1


def _ordered(errors: list[str], specs: list[MethodSpec]) -> list[str]:
    """Errors in table order (workers finish in any order)."""
    rank = {s.name: i for i, s in enumerate(specs)}
    return sorted(errors, key=lambda e: (rank.get(e.split(" / ", 1)[0], len(rank)), e))


__all__ = ["EvaluateRequest", "EvaluateUI", "evaluate", "plan_methods", "METRIC_CHOICES"]
