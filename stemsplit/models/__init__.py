"""Separation architectures behind one contract (``base.SeparationModel``) and one registry.

Each family is one file in this folder that subclasses ``SeparationModel`` and registers
itself with ``@register("<name>")``; ``model.name`` in a config selects it. Model files import
only torch, the helpers in this folder and ``stemsplit.errors`` (the ensemble also reads its
members' configs with ``stemsplit.config.model_config_from_dict``).

Importing this package does not import torch: the registry and the base class load on first
use, so torch-free modules here (``publishers``) serve an install without torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from stemsplit.models.base import SeparationModel

DEFAULT_ARCHITECTURE = "lstm"  # what a config without model.name gets

_FROM_REGISTRY = ("ensemble_family", "model_class", "names", "register", "unregister")


def __getattr__(name: str) -> Any:
    """The registry's functions and ``SeparationModel``, imported (with torch) when first asked for."""
    if name in _FROM_REGISTRY:
        return getattr(importlib.import_module("stemsplit.models.registry"), name)
    if name == "SeparationModel":
        return importlib.import_module("stemsplit.models.base").SeparationModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_args(cfg) -> dict:
    """The constructor arguments beside ``params``; stored in checkpoints for self-description."""
    return {"n_bins": cfg.n_bins, "n_channels": cfg.audio.channels, "n_stems": len(cfg.stems)}


def build_model(cfg) -> SeparationModel:
    """The architecture ``cfg.model.name`` selects, built from ``cfg.model.params`` and ``cfg``'s shapes."""
    from stemsplit.models.registry import model_class

    return model_class(cfg.model.name)(cfg.model.params, **model_args(cfg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["DEFAULT_ARCHITECTURE", "SeparationModel", "build_model", "count_parameters", *_FROM_REGISTRY,
           "model_args"]
