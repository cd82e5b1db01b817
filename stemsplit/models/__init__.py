"""Separation architectures behind one contract (``base.SeparationModel``) and one registry.

Each family is one file in this folder that subclasses ``SeparationModel`` and registers
itself with ``@register("<name>")``; ``model.name`` in a config selects it. Model files import
only torch, the helpers in this folder and ``stemsplit.errors`` (the ensemble also reads its
members' configs with ``stemsplit.config.model_config_from_dict``).
"""
from __future__ import annotations

from torch import nn

from stemsplit.models.base import SeparationModel
from stemsplit.models.registry import ensemble_family, model_class, names, register, unregister

DEFAULT_ARCHITECTURE = "lstm"  # what a config without model.name gets


def model_args(cfg) -> dict:
    """The constructor arguments beside ``params``; stored in checkpoints for self-description."""
    return {"n_bins": cfg.n_bins, "n_channels": cfg.audio.channels, "n_stems": len(cfg.stems)}


def build_model(cfg) -> SeparationModel:
    """The architecture ``cfg.model.name`` selects, built from ``cfg.model.params`` and ``cfg``'s shapes."""
    return model_class(cfg.model.name)(cfg.model.params, **model_args(cfg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["DEFAULT_ARCHITECTURE", "SeparationModel", "build_model", "count_parameters", "ensemble_family",
           "model_args", "model_class", "names", "register", "unregister"]
