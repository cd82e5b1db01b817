"""Phantom stems: what a model puts into a stem that is not in the music.

Each track of a split is remixed without one stem (say vocals), the remix is separated, and
the energy of that stem's estimate is compared with the remix's: ``10 log10(|ŝ|² / |x|²)``.
A silent estimate scores −inf, one that holds the whole remix 0 dB. The figure is the median
over tracks (and each track's value), so a model's "no phantom vocals on instrumentals" claim is
measured on real music.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemsplit.data.cache import PreparedDataset
from stemsplit.data.dataset import iter_full_tracks
from stemsplit.evaluation import EvaluationError
from stemsplit.metrics import nanmedian
from stemsplit.resolver import load_torch
from stemsplit.separation.torch_runner import torch_engine
from stemsplit.settings import EngineSettings

_TINY = 1e-20


@dataclass
class AbsentStemScore:
    stem: str
    median_db: float
    per_track: dict[str, float] = field(default_factory=dict)


def energy_ratio_db(estimate: np.ndarray, mixture: np.ndarray) -> float:
    """10 log10(|estimate|² / |mixture|²); -inf for a silent estimate."""
    num = float(np.sum(np.asarray(estimate, np.float64) ** 2))
    den = float(np.sum(np.asarray(mixture, np.float64) ** 2))
    if den <= _TINY:
        return math.nan
    return 10 * math.log10(num / den) if num > 0 else -math.inf


def median_energy_db(values: Iterable[float]) -> float:
    """The median of ``energy_ratio_db`` values, a silent estimate (-inf) counting as -200 dB and
    a silent input (nan) left out."""
    return nanmedian([v if math.isfinite(v) else (-200.0 if v < 0 else math.nan) for v in values])


def absent_stem_energy(model: str, data: Path, stem: str = "vocals", split: str = "valid",
                       engine: EngineSettings | None = None) -> AbsentStemScore:
    """Median over ``split``'s tracks of the energy the model puts in ``stem`` once it is removed."""
    loaded = load_torch(model)
    if stem not in loaded.stems:
        raise EvaluationError(f"model {model!r} has no stem {stem!r}; its stems are {', '.join(loaded.stems)}")
    loaded.model.eval()
    separator = torch_engine(loaded, engine or EngineSettings(device="cpu"))
    dataset = PreparedDataset(Path(data))
    index = loaded.stems.index(stem)
    per_track = {}
    for name, _mixture, sources in iter_full_tracks(dataset, split, loaded.stems):
        remix = np.delete(sources, index, axis=0).sum(0)               # (channels, time)
        estimate = separator.separate(remix)
        per_track[name] = energy_ratio_db(estimate[index], remix)
    if not per_track:
        raise EvaluationError(f"{data}: split {split!r} has no tracks")
    return AbsentStemScore(stem=stem, median_db=median_energy_db(per_track.values()), per_track=per_track)
