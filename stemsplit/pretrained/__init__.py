"""Shipped models: names -> checkpoint files inside the package, with their metadata.

``registry.json`` beside this file lists each shipped model (file, architecture, stems,
validation scores, speed) and names the default. An empty registry means no trained
weights ship with this build: ``separate`` then needs ``--model path/to/checkpoint``.
"""
from __future__ import annotations

import json
from pathlib import Path

from stemsplit.checkpoint import CheckpointError, LoadedModel, load_checkpoint

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


def resolve_model(name_or_path: str | None) -> LoadedModel:
    """A shipped model's name, a checkpoint path, or None for the default model."""
    reg = registry()
    models = reg.get("models", {})
    if name_or_path is None or name_or_path == "default":
        name_or_path = reg.get("default")
        if name_or_path is None:
            raise CheckpointError(
                "no trained model ships with this build yet; pass --model path/to/model.ckpt "
                "(make one with `stemsplit train` or scripts/init_checkpoint.py)")
    if name_or_path in models:
        return load_checkpoint(_HERE / models[name_or_path]["file"])
    path = Path(name_or_path).expanduser()
    if path.exists():
        return load_checkpoint(path)
    names = ", ".join(models) or "none yet"
    raise CheckpointError(
        f"model {name_or_path!r}: no such checkpoint file, and not a shipped model (shipped: {names})")
