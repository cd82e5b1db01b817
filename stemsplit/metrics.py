"""Separation metrics: the only module that imports museval.

Two metrics, both per track and stem:

- ``gsdr``: the global SDR of the MDX challenge, one number over the whole track,
  ``10 log10((eps + sum s^2) / (eps + sum (s - s_hat)^2))``. Fast; used for validation.
- BSS Eval v4 (``SDR``, ``SIR``, ``ISR``, ``SAR``) through museval on 1-second frames, the
  metric SiSEC publishes. Slow: a 7-second stereo track with four stems takes a few seconds.

Aggregation follows SiSEC 2018: the median over a track's frames, then the median over
tracks, for each stem; the ``mean`` stem is the average of the per-stem medians.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

GSDR = "gsdr"
BSS_METRICS = ("SDR", "SIR", "ISR", "SAR")
ALL_METRICS = (GSDR, *BSS_METRICS)
MEAN_STEM = "mean"
MDX_EPS = 1e-7  # the MDX challenge's delta: keeps silent references finite


# --- fast global SDR ------------------------------------------------------------------------


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """MDX global SDR in dB of one stem over a whole track; arrays of equal shape, e.g.
    ``(channels, time)``. Accumulates in float64."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(f"global_sdr: shapes differ, reference {reference.shape} vs estimate {estimate.shape}")
    signal = float(np.sum(reference ** 2))
    error = float(np.sum((reference - estimate) ** 2))
    return 10.0 * math.log10((MDX_EPS + signal) / (MDX_EPS + error))


def global_sdr_stems(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """``(stems, channels, time)`` pair -> ``(stems,)`` global SDR per stem."""
    return np.array([global_sdr(r, e) for r, e in zip(references, estimates)])


# --- BSS Eval v4 ------------------------------------------------------------------------------


def _silent(sources: np.ndarray) -> bool:
    """museval's own test: a source whose channel sum is zero at every sample is silent."""
    return bool(np.any(np.all(np.sum(sources, axis=1) == 0, axis=1)))


def num_frames(length: int, win: int, hop: int) -> int:
    """The number of BSS Eval frames museval produces for ``length`` samples."""
    return int(np.floor((length - win + hop) / hop)) if win < length else 1


def bss_eval_frames(references: np.ndarray, estimates: np.ndarray, sample_rate: int,
                    win_seconds: float = 1.0, hop_seconds: float = 1.0) -> dict[str, np.ndarray]:
    """BSS Eval v4 images on frames: ``(stems, channels, time)`` pair -> ``{metric: (stems, frames)}``.

    As in museval, a frame where any reference or estimate is silent scores NaN for every
    stem. A stem silent over the whole track makes museval refuse the track; the same rule
    gives all-NaN frames here, so one silent excerpt never stops an evaluation.
    """
    import museval  # heavy (pandas, scipy): only where BSS Eval is asked for

    if references.shape != estimates.shape:
        raise ValueError(f"bss_eval_frames: shapes differ, {references.shape} vs {estimates.shape}")
    ref = np.ascontiguousarray(np.transpose(references, (0, 2, 1)), dtype=np.float64)
    est = np.ascontiguousarray(np.transpose(estimates, (0, 2, 1)), dtype=np.float64)
    win, hop = int(win_seconds * sample_rate), int(hop_seconds * sample_rate)
    if _silent(ref) or _silent(est):
        nan = np.full((ref.shape[0], num_frames(ref.shape[1], win, hop)), np.nan)
        return {m: nan.copy() for m in BSS_METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log10 of 0 in degenerate frames
        # what museval.evaluate(mode="v4") runs, minus its extra copy of both (full-track) arrays
        sdr, isr, sir, sar, _ = museval.metrics.bss_eval(
            ref, est, window=win, hop=hop, compute_permutation=False, framewise_filters=False,
            bsseval_sources_version=False)
    return {"SDR": np.asarray(sdr, float), "SIR": np.asarray(sir, float),
            "ISR": np.asarray(isr, float), "SAR": np.asarray(sar, float)}


def museval_track_json(track: str, frames: Mapping[str, Mapping[str, Iterable[float]]],
                       win_seconds: float = 1.0, hop_seconds: float = 1.0) -> str:
    """museval's per-track JSON (``TrackStore.json``) from ``{stem: {metric: [frame values]}}``.

    The text validates against museval's schema and loads with ``museval.json2df`` or, in a
    ``<dir>/test/`` layout, ``museval.EvalStore().add_eval_dir(dir)``.
    """
    import museval

    store = museval.TrackStore(track_name=track, win=win_seconds, hop=hop_seconds)
    for stem, metrics in frames.items():
        store.add_target(target_name=stem,
                         values={m: [float("nan") if v is None else float(v) for v in metrics[m]]
                                 for m in BSS_METRICS})
    store.validate()
    return store.json


# --- aggregation --------------------------------------------------------------------------------


def nanmedian(values: Iterable[float | None]) -> float:
    """Median ignoring NaN/None; NaN when nothing is left."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


def frame_median(frame_values: Iterable[float | None]) -> float:
    """A track's BSS Eval score: the median over its frames (museval's ``frames_agg``)."""
    return nanmedian(frame_values)


def aggregate(track_scores: Iterable[tuple[str, str, str, str, float]],
              stems: list[str] | None = None) -> dict[tuple[str, str, str], float]:
    """Per-track rows ``(model, track, stem, metric, value)`` -> ``{(model, stem, metric): median}``.

    ``value`` is already one number per track (``frame_median`` for BSS Eval). The median over
    tracks ignores NaN tracks. A ``mean`` stem is added per model and metric: the average of
    the per-stem medians over ``stems`` (default: every stem seen for that model), NaN if any
    of them is NaN so that an average over fewer stems never passes for the full one.
    """
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for model, _track, stem, metric, value in track_scores:
        groups[(model, stem, metric)].append(value)
    out = {key: nanmedian(vals) for key, vals in groups.items()}
    by_model_metric: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for (model, stem, metric), value in out.items():
        by_model_metric[(model, metric)][stem] = value
    for (model, metric), per_stem in by_model_metric.items():
        wanted = stems if stems is not None else sorted(per_stem)
        values = [per_stem.get(s, float("nan")) for s in wanted]
        out[(model, MEAN_STEM, metric)] = float(np.mean(values)) if values else float("nan")
    return out
