"""Shipped models: names -> checkpoint and ONNX files inside the package, with their metadata.

``registry.json`` beside this file lists each shipped model (file, its ``onnx`` form,
architecture, stems, validation scores, speed) and names the default. An empty registry means
no trained weights ship with this build: ``separate`` then needs ``--model path/to/model``.
This module imports torch only inside ``resolve_model`` (the torch runtime): the registry and
``resolve_onnx`` serve the torch-free install.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from stemsplit.errors import CheckpointError

if TYPE_CHECKING:
    from stemsplit.checkpoint import LoadedModel

_HERE = Path(__file__).resolve().parent
REGISTRY_FILE = _HERE / "registry.json"


def registry() -> dict:
    if not REGISTRY_FILE.is_file():
        return {"default": None, "models": {}}
    return json.loads(REGISTRY_FILE.read_text())


def default_model_name() -> str | None:
    return registry().get("default")


def list_models() -> list[dict]:
    """One dict per shipped model: name, file, architecture, size, stems, scores, speed, default."""
    reg = registry()
    out = []
    for name, entry in reg.get("models", {}).items():
        path = _HERE / entry["file"]
        out.append({"name": name, **entry, "path": str(path),
                    "size_mb": round(path.stat().st_size / 1e6, 1) if path.exists() else None,
                    "default": name == reg.get("default")})
    return out


def model_display_name(name_or_path: str | None) -> str:
    """The folder name used in output paths: the shipped name, or the checkpoint's file stem."""
    if name_or_path is None:
        return default_model_name() or "model"
    if name_or_path in registry().get("models", {}):
        return name_or_path
    return Path(name_or_path).stem


def _name_or_default(name_or_path: str | None) -> str:
    if name_or_path is None or name_or_path == "default":
        name = registry().get("default")
        if name is None:
            raise CheckpointError(
                "no trained model ships with this build yet; pass --model path/to/model.ckpt "
                "(make one with `stemsplit train` or scripts/init_checkpoint.py)")
        return name
    return name_or_path


def onnx_path(name_or_path: str | None) -> Path | None:
    """The ONNX file of a shipped name (or the default, None), or an existing *.onnx path;
    None when the model has no ONNX form here (a checkpoint, or a shipped model without one)."""
    try:
        name = _name_or_default(name_or_path)
    except CheckpointError:
        return None
    entry = registry().get("models", {}).get(name)
    if entry is not None:
        path = _HERE / entry["onnx"] if entry.get("onnx") else None
        return path if path is not None and path.is_file() else None
    path = Path(name).expanduser()
    return path if path.suffix.lower() == ".onnx" and path.is_file() else None


def resolve_onnx(name_or_path: str | None) -> Path:
    """The ONNX file for a shipped model's name, None (the default model) or a *.onnx path."""
    name = _name_or_default(name_or_path)
    found = onnx_path(name)
    if found is not None:
        return found
    models = registry().get("models", {})
    if name in models:
        raise CheckpointError(f"shipped model {name!r} has no ONNX file in this build; run it with --runtime torch "
                              f"or export it: stemsplit export --model {name} -o {name}.onnx")
    path = Path(name).expanduser()
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(f"ONNX model not found: {path}" if not path.exists() else
                              f"{path} is a folder, not an ONNX model file")
    if path.exists():
        raise CheckpointError(f"{path} is a torch checkpoint, not an ONNX model: run it with --runtime torch, "
                              f"or export it first: stemsplit export --model {path} -o {path.stem}.onnx")
    names = ", ".join(models) or "none yet"
    raise CheckpointError(f"model {name!r}: no such file, and not a shipped model (shipped: {names})")


def resolve_model(name_or_path: str | None) -> LoadedModel:
    """A shipped model's name, a checkpoint path, or None for the default model (torch runtime)."""
    from stemsplit.checkpoint import load_checkpoint  # torch: only the torch runtime gets here

    models = registry().get("models", {})
    name_or_path = _name_or_default(name_or_path)
    if name_or_path in models:
        return load_checkpoint(_HERE / models[name_or_path]["file"])
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".onnx" and path.is_file():
        raise CheckpointError(f"{path} is an ONNX model, which the torch runtime cannot load: run it with "
                              "--runtime onnx (or pass the checkpoint it was exported from)")
    if path.exists():
        return load_checkpoint(path)
    names = ", ".join(models) or "none yet"
    raise CheckpointError(
        f"model {name_or_path!r}: no such checkpoint file, and not a shipped model (shipped: {names})")
