"""Separate and score (method, track) jobs, in worker processes when ``workers > 1``.

Each job loads its track from the prepared dataset, produces the estimates, scores them,
and writes its cache entry atomically before returning, so whatever finished survives an
interrupted or failing run. A failing job becomes an ``Outcome`` with a one-line error;
the other jobs go on.

Workers are spawned (not forked: a forked child of a process that already ran OpenMP code
can hang) with one torch and BLAS thread each, so N workers use about N cores.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from stemsplit.evaluation.methods import MethodSpec, produce_estimates
from stemsplit.evaluation.store import FAST, MUSEVAL, ScoreStore, TrackResult
from stemsplit.metrics import bss_eval_frames, global_sdr_stems

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Job:
    spec: MethodSpec
    track: str
    data_root: str
    families: tuple[str, ...]  # FAST and/or MUSEVAL
    validity: dict[str, Any]
    cache_root: str
    previous: dict | None = None  # a cached entry holding some other families, to merge into


@dataclass
class Outcome:
    method: str
    track: str
    result: TrackResult | None = None
    error: str | None = None


def score_track(references: np.ndarray, estimates: np.ndarray, sample_rate: int, stems: list[str],
                families: tuple[str, ...]) -> tuple[dict[str, float] | None, dict | None]:
    """(stems, channels, time) pair -> (gsdr per stem or None, BSS Eval frames per stem or None)."""
    gsdr = frames = None
    if FAST in families:
        gsdr = dict(zip(stems, (float(v) for v in global_sdr_stems(references, estimates))))
    if MUSEVAL in families:
        scores = bss_eval_frames(references, estimates, sample_rate)
        frames = {stem: {m: [float(v) for v in scores[m][i]] for m in scores} for i, stem in enumerate(stems)}
    return gsdr, frames


_DATASETS: dict[str, Any] = {}


def _dataset(root: str):
    if root not in _DATASETS:
        from stemsplit.data.cache import PreparedDataset

        _DATASETS.clear()
        _DATASETS[root] = PreparedDataset(Path(root))
    return _DATASETS[root]


def load_reference(dataset, track: str, stems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(mixture (channels, time), sources (stems, channels, time)) float32 of one prepared track."""
    arrays = dataset.load_track(track)
    mixture = np.asarray(arrays["mixture"], np.float32)
    sources = np.stack([np.asarray(arrays[s], np.float32) for s in stems])
    return mixture, sources


def run_job(job: Job) -> Outcome:
    """Produce, score and cache one (method, track); never raises for a bad item."""
    spec = job.spec
    try:
        start = time.perf_counter()
        dataset = _dataset(job.data_root)
        mixture, sources = load_reference(dataset, job.track, spec.stems)
        separating = time.perf_counter()
        estimates = produce_estimates(spec, job.track, mixture, sources, dataset.sample_rate)
        separate_seconds = time.perf_counter() - separating  # the listening report's speed column
        if estimates.shape != sources.shape:
            raise ValueError(f"estimates have shape {estimates.shape}, the references {sources.shape}")
        if not np.isfinite(estimates).all():
            raise ValueError("estimates contain NaN or Inf samples")
        gsdr, frames = score_track(sources, estimates, dataset.sample_rate, spec.stems, job.families)
        result = TrackResult(key=spec.key, track=job.track, stems=spec.stems, validity=job.validity,
                             gsdr=gsdr, frames=frames, seconds=time.perf_counter() - start,
                             extra={"separate_seconds": separate_seconds})
        if job.previous is not None:
            result = result.merged(TrackResult.from_json(job.previous))
        ScoreStore(Path(job.cache_root)).save(result)
        return Outcome(spec.name, job.track, result=result)
    except Exception as exc:  # one bad track never stops the others
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Outcome(spec.name, job.track, error=f"{spec.name} / {job.track}: {text}")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Spawned children read these at import; the parent's own value is put back afterwards."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_jobs(jobs: list[Job], workers: int, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every job; ``on_outcome`` is called in the parent as each one finishes."""
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            record(run_job(job))
        return outcomes
    # children are spawned as jobs are submitted, so the variables stay set while submitting
    with _single_threaded_children():
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn"),
                                   initializer=_init_worker)
        try:
            pending = {pool.submit(run_job, job): job for job in jobs}
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    record(future.result())
                except Exception as exc:  # a worker died (killed, out of memory)
                    record(Outcome(job.spec.name, job.track,
                                   error=f"{job.spec.name} / {job.track}: worker failed ({type(exc).__name__}: {exc})"))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcomes
