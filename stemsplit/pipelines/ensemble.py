"""Build an ensemble checkpoint: trained member models plus per-stem weights fitted on a split.

Each member separates every track of the split once (no Wiener filter, so stems combine
linearly). For each stem, every weight vector on a simplex grid (``step``) is scored by the mean
global SDR over the tracks of the weighted sum of the members' stems, and the best wins. The
result is one checkpoint of the ensemble family (``is_ensemble`` in the model contract): the
members' configs and weights inside, the fitted weights in its config, ready for
``separate --model`` and ``evaluate -m``.

Weights fitted on a split and scored on the same split flatter the ensemble by what the fit
learnt of those tracks; score it also on data it was not fitted on.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemsplit.checkpoint import LoadedModel, save_checkpoint
from stemsplit.config import Config, ConfigError, config_from_dict, config_to_dict, model_config_to_dict
from stemsplit.data.cache import PreparedDataset
from stemsplit.data.dataset import iter_full_tracks
from stemsplit.metrics import global_sdr
from stemsplit.models import build_model, ensemble_family
from stemsplit.resolver import load_torch
from stemsplit.separation.torch_runner import torch_engine
from stemsplit.settings import EngineSettings


@dataclass
class EnsembleFit:
    weights: list[list[float]]  # (members, stems)
    member_scores: dict[str, dict[str, float]]  # member -> stem -> mean gSDR on the split
    ensemble_scores: dict[str, float]  # stem -> mean gSDR of the fitted combination
    tracks: int


def simplex_grid(members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of ``members`` non-negative multiples of ``step`` that sum to 1."""
    n = round(1 / step)
    if n < 1 or abs(n * step - 1) > 1e-9:
        raise ConfigError(f"--step {step}: must divide 1, e.g. 0.05 or 0.1")
    return [tuple(c / n for c in combo) for combo in itertools.product(range(n + 1), repeat=members)
            if sum(combo) == n]


def _check_compatible(loaded: list[LoadedModel], names: list[str], dataset: PreparedDataset) -> None:
    first = loaded[0].config
    for name, other in zip(names[1:], loaded[1:]):
        cfg = other.config
        for what, a, b in (("stems", first.stems, cfg.stems), ("stft", first.stft, cfg.stft),
                           ("audio", first.audio, cfg.audio)):
            if a != b:
                raise ConfigError(f"ensemble member {name!r}: its {what} ({b}) differ from {names[0]!r}'s ({a}); "
                                  "members must share stems, STFT and audio settings")
    if (dataset.sample_rate, dataset.channels) != (first.audio.sample_rate, first.audio.channels):
        raise ConfigError(f"{dataset.root}: {dataset.sample_rate} Hz, {dataset.channels} channel(s), but the "
                          f"members separate {first.audio.sample_rate} Hz, {first.audio.channels} channel(s); "
                          "prepare the data at the members' rate and channels")


def fit_weights(members: list[str], data: Path, split: str = "valid", step: float = 0.05, device: str = "cpu",
                say: Callable[[str], None] | None = None) -> tuple[EnsembleFit, list[LoadedModel]]:
    """Fit per-stem weights of ``members`` (shipped names or checkpoint paths) on ``data``'s split;
    ``say`` gets one line per separated track."""
    if len(members) < 2:
        raise ConfigError("an ensemble needs at least two member models")
    grid = simplex_grid(len(members), step)  # a bad step fails before any separation
    dataset = PreparedDataset(Path(data))
    tracks = dataset.tracks(split)
    if not tracks:
        raise ConfigError(f"{data}: split {split!r} has no tracks to fit the ensemble on")
    loaded = [load_torch(m) for m in members]
    _check_compatible(loaded, members, dataset)
    stems = loaded[0].stems
    separators = []
    for lm in loaded:
        lm.model.eval()
        separators.append(torch_engine(lm, EngineSettings(wiener_iterations=0, device=device)))
    references, estimates = [], []  # per track: (S, C, L) and (M, S, C, L)
    for i, (name, mixture, sources) in enumerate(iter_full_tracks(dataset, split, stems)):
        if say:
            say(f"separating {split} track {i + 1}/{len(tracks)} with {len(members)} members: {name}")
        estimates.append(np.stack([sep.separate(mixture) for sep in separators]))
        references.append(sources)
    weights = np.zeros((len(members), len(stems)))
    ensemble_scores, member_scores = {}, {m: {} for m in members}
    for s, stem in enumerate(stems):
        if say:
            say(f"fitting the weights of {stem}: {len(grid)} combinations")
        scored = [(_mean_gsdr(references, estimates, s, np.asarray(w)), w) for w in grid]
        best_score, best = max(scored, key=lambda x: x[0])
        weights[:, s] = best
        ensemble_scores[stem] = round(best_score, 3)
        for i, m in enumerate(members):
            member_scores[m][stem] = round(_mean_gsdr(references, estimates, s, np.eye(len(members))[i]), 3)
    return EnsembleFit(weights=weights.round(6).tolist(), member_scores=member_scores,
                       ensemble_scores=ensemble_scores, tracks=len(references)), loaded


def _mean_gsdr(references: list[np.ndarray], estimates: list[np.ndarray], stem: int, weights: np.ndarray) -> float:
    """Mean over tracks of stem ``stem``'s global SDR when the members' (M,) ``weights`` mix their estimates."""
    return float(np.mean([global_sdr(ref[stem], np.tensordot(weights, est[:, stem], axes=1))
                          for ref, est in zip(references, estimates)]))


def ensemble_config(loaded: list[LoadedModel], weights: list[list[float]], wiener_iterations: int) -> Config:
    """The first member's audio/STFT/stems/segment settings; the ensemble as its model."""
    raw = config_to_dict(loaded[0].config)
    members = [model_config_to_dict(lm.config.model) for lm in loaded]
    raw["model"] = ensemble_family().model_section(members, weights)
    raw["separate"]["wiener_iterations"] = wiener_iterations
    return config_from_dict(raw)


def write_ensemble(members: list[str], data: Path, out: Path, split: str = "valid", step: float = 0.05,
                   wiener_iterations: int = 0, device: str = "cpu",
                   say: Callable[[str], None] | None = None) -> EnsembleFit:
    """Fit the weights and write the ensemble checkpoint to ``out`` (atomically)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; name the checkpoint file to write, e.g. {out / 'ensemble.ckpt'}")
    fit, loaded = fit_weights(members, data, split, step, device, say)
    cfg = ensemble_config(loaded, fit.weights, wiener_iterations)
    model = build_model(cfg)
    state = {f"members.{i}.{k}": v.float() if v.is_floating_point() else v
             for i, lm in enumerate(loaded) for k, v in lm.model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    meta = {"ensemble": {"members": members, "fitted_on": f"{Path(data).name} {split} ({fit.tracks} tracks)",
                         "step": step, "member_gsdr_mean": fit.member_scores,
                         "ensemble_gsdr_mean": fit.ensemble_scores},
            "member_meta": [lm.meta for lm in loaded]}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, cfg, meta=meta)
    return fit
