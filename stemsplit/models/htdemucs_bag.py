"""``htdemucs_bag``: several Hybrid Transformer Demucs networks run as one, each stem a weighted
average of the networks' estimates of it (the publisher's "bag of models", e.g. ``htdemucs_ft``:
four networks, each fine-tuned for one stem, weights the identity).

Why not the ``ensemble`` family: that one combines the masks of magnitude models under one
shared STFT; a bag combines waveforms of networks that each do their own STFT. The weights are
normalised per stem (each column sums to one) as the publisher divides by each stem's total.
Every member runs on the same segment, so the bag is exact wherever its members share their
training segment (all published bags do); a shorter member pads to its own, as it would alone.

Shape letters: B batch, C channels, S stems, L samples, M members.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from stemsplit.config import model_config_from_dict
from stemsplit.errors import ConfigError, ModelError
from stemsplit.models.base import SeparationModel
from stemsplit.models.htdemucs import HTDemucs
from stemsplit.models.registry import register


@dataclass
class HTDemucsBagParams:
    members: list[Any] = field(default_factory=list)  # each {name: htdemucs, **its params}
    weights: list[list[float]] = field(default_factory=list)  # (M, S); empty: all ones


def _member_configs(params: HTDemucsBagParams) -> list:
    return [model_config_from_dict(m, f"model.members[{i}]") for i, m in enumerate(params.members)]


def normalised_weights(weights: list[list[float]], members: int, stems: int) -> list[list[float]]:
    """(M, S) weights with each stem's column divided by its total (all ones when ``weights`` is empty)."""
    rows = [list(map(float, row)) for row in weights] or [[1.0] * stems for _ in range(members)]
    totals = [sum(row[s] for row in rows) for s in range(stems)]
    return [[row[s] / totals[s] for s in range(stems)] for row in rows]


@register("htdemucs_bag")
class HTDemucsBag(SeparationModel):
    """Waveform (B, C, L) -> per-stem weighted average of the members' stems (B, S, C, L)."""

    params_class = HTDemucsBagParams
    input_kind, output_kind, target, default_loss = "waveform", "waveforms", "waveform", "l1"

    @classmethod
    def check_params(cls, params: HTDemucsBagParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if not params.members:
            raise ConfigError("model.members: a bag needs at least one member network")
        for i, member in enumerate(_member_configs(params)):
            if member.name != HTDemucs.name:
                raise ConfigError(f"model.members[{i}]: {member.name!r} is not a Hybrid Transformer Demucs "
                                  f"network ({HTDemucs.name})")
            HTDemucs.check_params(member.params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        w = params.weights
        if w and (len(w) != len(params.members) or any(len(row) != n_stems for row in w)):
            raise ConfigError(f"model.weights: needs {len(params.members)} rows (one per member) of "
                              f"{n_stems} per-stem weights")
        for s in range(n_stems):
            column = [row[s] for row in w]
            if column and (min(column) < 0 or sum(column) <= 0):
                raise ConfigError(f"model.weights: stem {s}'s weights {column} must be >= 0 with a positive sum")

    def __init__(self, params: HTDemucsBagParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.members = nn.ModuleList(HTDemucs(m.params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
                                     for m in _member_configs(params))
        weights = normalised_weights(params.weights, len(self.members), n_stems)
        self.register_buffer("stem_weights", torch.tensor(weights, dtype=torch.float32), persistent=False)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(B, C, L) mixture -> (B, S, C, L) stems; a member with zero weight for every stem is skipped."""
        out = None
        for i, member in enumerate(self.members):
            w = self.stem_weights[i]
            if not bool((w > 0).any()):
                continue
            stems = member(mix) * w.view(1, -1, 1, 1)
            out = stems if out is None else out + stems
        return out

    def export_module(self) -> nn.Module:
        raise ModelError("a bag of HTDemucs networks has no ONNX export; run it on torch (--runtime torch)")
