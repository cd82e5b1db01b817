"""``mask_ensemble``: trained mask models with per-stem weights, run as one (Demucs' bag of models).

Every member sees the same magnitude spectrogram (the audio is read, resampled and transformed
once) and the ensemble's mask for stem s is ``sum_i weights[i][s] * mask_i[s]``. With the
mixture phase that is exactly the weighted average of the members' stems; with the Wiener
post-filter the members share one Wiener step on the combined estimate. The weights are fitted
on a split per stem (``stemsplit ensemble``) and live in the checkpoint's config and the
shipped registry, not in code.

Shape letters: B batch, C channels, F frequency bins, T frames, S stems, M members.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from stemsplit.config import model_config_from_dict
from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.registry import model_class, register


@dataclass
class EnsembleParams:
    members: list[Any] = field(default_factory=list)  # each a model config: {name: <architecture>, **params}
    weights: list[list[float]] = field(default_factory=list)  # (M, S): member i's weight for stem s


def _member_configs(params: EnsembleParams) -> list:
    return [model_config_from_dict(m, f"model.members[{i}]") for i, m in enumerate(params.members)]


@register("mask_ensemble")
class Ensemble(SeparationModel):
    """Magnitude (B, C, F, T) -> weighted member masks (B, S, C, F, T)."""

    params_class = EnsembleParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "l1"
    is_ensemble = True

    @classmethod
    def model_section(cls, members: list[dict], weights: list[list[float]]) -> dict:
        """The config's ``model`` section for these member model configs and (M, S) weights."""
        return {"name": cls.name, "members": members, "weights": weights}

    @classmethod
    def check_params(cls, params: EnsembleParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if len(params.members) < 1:
            raise ConfigError("model.members: an ensemble needs at least one member model")
        for i, member in enumerate(_member_configs(params)):
            kind = model_class(member.name)
            if (kind.input_kind, kind.output_kind) != ("magnitude", "masks"):
                raise ConfigError(f"model.members[{i}]: {member.name!r} maps {kind.input_kind} to "
                                  f"{kind.output_kind}; an ensemble combines magnitude -> masks models")
            kind.check_params(member.params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        w = params.weights
        if len(w) != len(params.members) or any(len(row) != n_stems for row in w):
            raise ConfigError(f"model.weights: needs {len(params.members)} rows (one per member) of "
                              f"{n_stems} per-stem weights")
        for s in range(n_stems):
            column = [row[s] for row in w]
            if min(column) < 0 or abs(sum(column) - 1.0) > 1e-3:
                raise ConfigError(f"model.weights: stem {s}'s weights {column} must be >= 0 and sum to 1")

    def __init__(self, params: EnsembleParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.members = nn.ModuleList(
            model_class(m.name)(m.params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
            for m in _member_configs(params))
        # (M, S) -> broadcastable over (B, S, C, F, T); a buffer so it follows .to(device)
        self.register_buffer("stem_weights", torch.tensor(params.weights, dtype=torch.float32),
                             persistent=False)

    def context_frames(self) -> int | None:
        contexts = [m.context_frames() for m in self.members]
        return None if any(c is None for c in contexts) else max(contexts)

    def export_module(self) -> nn.Module:
        """Itself, with each member replaced by its own export form where that differs."""
        exported = [m.export_module() for m in self.members]
        if all(e is m for e, m in zip(exported, self.members)):
            return self
        ensemble = type(self)(self.params, n_bins=self.n_bins, n_channels=self.n_channels, n_stems=self.n_stems)
        ensemble.members = nn.ModuleList(exported)
        return ensemble.eval()

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) masks in [0, 1]."""
        out = None
        for i, member in enumerate(self.members):
            masks = member(mag) * self.stem_weights[i].view(1, -1, 1, 1, 1)
            out = masks if out is None else out + masks
        return out
