"""The one model registry: architecture name -> ``SeparationModel`` subclass.

It serves config loading (the params dataclass and its checks), training, validation,
separation, checkpoint loading and ``--list-models``. The built-in families register
themselves when their file in ``stemsplit/models/`` is imported (every module there is, on
first use); other code registers its own with ``@register("name")``, and installed packages
through the ``stemsplit.models`` entry-point group.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points

from stemsplit.errors import ConfigError
from stemsplit.models.base import INPUT_KINDS, OUTPUT_KINDS, TARGETS, TRAINED_BY, SeparationModel

_MODELS: dict[str, type[SeparationModel]] = {}
_NOT_FAMILIES = {"base", "registry", "common"}  # helper modules in the models folder
_loaded = False


def register(name: str) -> Callable[[type[SeparationModel]], type[SeparationModel]]:
    """Class decorator: make ``cls`` the architecture that ``model.name: <name>`` selects."""

    def add(cls: type[SeparationModel]) -> type[SeparationModel]:
        _check_contract(name, cls)
        known = _MODELS.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ConfigError(f"model name {name!r} is already registered by {known.__module__}.{known.__qualname__}")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return add


def unregister(name: str) -> None:
    """Remove a registration (tests that register a temporary architecture clean up with this)."""
    _MODELS.pop(name, None)


def _check_contract(name: str, cls: type) -> None:
    where = f"model {name!r} ({getattr(cls, '__qualname__', cls)})"
    if not (isinstance(cls, type) and issubclass(cls, SeparationModel)):
        raise TypeError(f"{where}: must subclass stemsplit.models.base.SeparationModel")
    if not dataclasses.is_dataclass(getattr(cls, "params_class", None)):
        raise TypeError(f"{where}: params_class must be a dataclass")
    for attr, choices in (("input_kind", INPUT_KINDS), ("output_kind", OUTPUT_KINDS), ("target", TARGETS),
                          ("trained_by", TRAINED_BY)):
        if getattr(cls, attr) not in choices:
            raise TypeError(f"{where}: {attr} {getattr(cls, attr)!r} is not one of {', '.join(choices)}")


def _load_builtin() -> None:
    """Import every family file in this folder, then installed plugins (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module("stemsplit.models")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_FAMILIES:
            importlib.import_module(f"stemsplit.models.{info.name}")
    for ep in entry_points(group="stemsplit.models"):
        ep.load()


def names() -> list[str]:
    _load_builtin()
    return sorted(_MODELS)


def ensemble_family() -> type[SeparationModel]:
    """The family that runs several trained models as one (``is_ensemble``)."""
    found = [model_class(n) for n in names() if model_class(n).is_ensemble]
    if not found:
        raise ConfigError("no registered model family combines trained models into an ensemble")
    return found[0]


def model_class(name: str) -> type[SeparationModel]:
    _load_builtin()
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"model.name: unknown model {name!r}; valid models are: {', '.join(names())}") from None
