"""Shipped models: the package data beside this file and the registry that names them.

``registry.json`` lists each shipped model (its checkpoint ``file``, its ``onnx`` form,
architecture, stems, validation scores, speed) and names the default. An empty registry means
no trained weights ship with this build. This module only reads that data: turning a name
into something that runs is ``stemsplit.resolver``'s job. Standard library only.
"""
from __future__ import annotations

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REGISTRY_FILE = _HERE / "registry.json"


def registry() -> dict:
    if not REGISTRY_FILE.is_file():
        return {"default": None, "models": {}}
    return json.loads(REGISTRY_FILE.read_text())


def default_model_name() -> str | None:
    return registry().get("default")


def model_file(name: str) -> Path:
    """The path of a file shipped in this folder (a registry entry's ``file`` or ``onnx``)."""
    return _HERE / name


def list_models() -> list[dict]:
    """One dict per shipped model: its registry entry plus path, size_mb and default."""
    reg = registry()
    out = []
    for name, entry in reg.get("models", {}).items():
        path = _HERE / entry["file"]
        out.append({"name": name, **entry, "path": str(path),
                    "size_mb": round(path.stat().st_size / 1e6, 1) if path.exists() else None,
                    "default": name == reg.get("default")})
    return out
