"""Format adapters: a publisher's model files -> one of stemsplit's model families, with its weights.

Each adapter module here (``openunmix``, ``demucs``, ``roformer``) has the same small interface::

    FORMAT: str                                     # the catalogue's "format" value
    looks_like(path) -> bool                        # a user's local file or folder in this format? (cheap)
    files_from_path(path) -> ModelFiles             # that file or folder as ModelFiles
    load(files, *, torch_needed=True) -> stemsplit.checkpoint.LoadedModel

Adapters do I/O and mapping only: the architectures live in ``stemsplit/models/``, the
downloads in ``stemsplit/hub/``. Weights are read through a safe loader (``torch_pickle``,
``safetensors``): no code in a model file ever runs.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from stemsplit.errors import CheckpointError


@dataclass(frozen=True)
class ModelFiles:
    """The local files of one model, by role, and what the caller knows about them.

    ``paths``: role -> local path, e.g. {"vocals": .../vocals-b62c91ce.pth, "separator":
    .../separator.json}. ``options``: hyper-parameters the files themselves do not hold (a
    catalogue entry's ``options``, e.g. {"hidden_size": 512}). ``meta``: what a LoadedModel's
    meta should carry beside the adapter's own keys (name, source, licence, published score).
    """

    paths: dict[str, Path]
    options: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", {role: Path(p) for role, p in self.paths.items()})

    @property
    def roles(self) -> list[str]:
        return list(self.paths)

    def path(self, role: str) -> Path:
        """The file for ``role``; a CheckpointError that names the missing role and the others."""
        try:
            return self.paths[role]
        except KeyError:
            have = ", ".join(self.paths) or "none"
            raise CheckpointError(f"model files: no {role!r} file among the given ones ({have}); "
                                  "pass the model's complete folder or re-download it") from None

    def describe(self) -> str:
        """Where these files are, for messages: their common folder, or the single file."""
        paths = list(self.paths.values())
        if len(paths) == 1:
            return str(paths[0])
        parents = {p.parent for p in paths}
        return str(parents.pop()) if len(parents) == 1 else ", ".join(map(str, paths))


# the adapter modules of this package, in the order a user's local path is offered to them
ADAPTERS = ("openunmix", "demucs", "roformer")


def adapter(format_name: str) -> ModuleType:
    """The adapter module whose FORMAT is ``format_name`` (a catalogue entry's ``format``)."""
    if format_name not in ADAPTERS:
        raise CheckpointError(f"model format {format_name!r} is not one stemsplit reads ({', '.join(ADAPTERS)}); "
                              "update stemsplit")
    return importlib.import_module(f"stemsplit.formats.{format_name}")


def adapter_for_path(path: Path) -> ModuleType | None:
    """The adapter that recognises the local file or folder ``path``, or None."""
    for name in ADAPTERS:
        if importlib.util.find_spec(f"stemsplit.formats.{name}") is None:  # not written yet
            continue
        module = adapter(name)
        if module.looks_like(path):
            return module
    return None


__all__ = ["ADAPTERS", "ModelFiles", "adapter", "adapter_for_path"]
