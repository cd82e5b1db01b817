"""Self-describing checkpoints that load with ``torch.load(weights_only=True)``.

Layout (plain types and tensors only, so loading never runs code)::

    {"format": 1, "model": {"name": ..., "args": {...}}, "config": {...resolved config...},
     "stems": [...], "sample_rate": 44100, "state_dict": {...},
     "meta": {"trained_on": ..., "recipe": ..., "scores": {...}, "git": ...},
     "train_state": {... only in a training run's last.ckpt ...}}
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stemsplit.atomic import atomic_open
from stemsplit.config import Config, ConfigError, config_from_dict, config_to_dict
from stemsplit.errors import CheckpointError  # re-exported: it lives in errors.py so torch-free code can raise it
from stemsplit.models import build_model, model_args

FORMAT_VERSION = 1


@dataclasses.dataclass
class LoadedModel:
    model: nn.Module
    config: Config
    meta: dict
    path: Path | None = None

    @property
    def stems(self) -> list[str]:
        return list(self.config.stems)

    @property
    def sample_rate(self) -> int:
        return self.config.audio.sample_rate


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers, so saved keys carry no prefix."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def checkpoint_dict(model: nn.Module, cfg: Config, meta: dict | None = None,
                    train_state: dict | None = None, half: bool = False) -> dict:
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    ckpt: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": model_header(cfg),
        "config": config_to_dict(cfg),
        "stems": list(cfg.stems),
        "sample_rate": cfg.audio.sample_rate,
        "state_dict": state,
        "meta": meta or {},
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``."""
    with atomic_open(path, "wb", fsync=True) as fh:
        torch.save(obj, fh)


def save_checkpoint(path: str | Path, model: nn.Module, cfg: Config, meta: dict | None = None,
                    train_state: dict | None = None, half: bool = False) -> None:
    atomic_torch_save(checkpoint_dict(model, cfg, meta, train_state, half), path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, validated; raises CheckpointError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a random or damaged file can fail in any unpickler step
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable stemsplit checkpoint (truncated, corrupt or not a "
            f"checkpoint: {reason[:120]}); re-download or re-train it"
        ) from None
    if not isinstance(ckpt, dict) or "format" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a stemsplit checkpoint (no 'format'/'state_dict'); "
            "write one with scripts/init_checkpoint.py or stemsplit train"
        )
    if ckpt["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {ckpt['format']}, this stemsplit reads format {FORMAT_VERSION}"
        )
    return ckpt


def model_header(cfg: Config) -> dict:
    """The checkpoint's self-description of the model: its name and every constructor argument."""
    return {"name": cfg.model.name, "args": {**config_to_dict(cfg)["model"], **model_args(cfg)}}


def _check_header(ckpt: dict, cfg: Config, where: str) -> None:
    """The self-describing header (model name and args, stems, rate) must agree with the config:
    tools read the header without building a config, so a disagreement is a damaged file."""
    ours = model_header(cfg)
    stored = ckpt.get("model") if isinstance(ckpt.get("model"), dict) else {}
    args = stored.get("args") if isinstance(stored.get("args"), dict) else {}
    # a field added to a family after the file was written takes its default, so only the
    # stored arguments must match
    matches = {
        "model": stored.get("name") == ours["name"] and all(k in ours["args"] and ours["args"][k] == v
                                                            for k, v in args.items()),
        "stems": ckpt.get("stems") == list(cfg.stems),
        "sample_rate": ckpt.get("sample_rate") == cfg.audio.sample_rate,
    }
    for key, ok in matches.items():
        if not ok:
            raise CheckpointError(f"{where}: its '{key}' header ({ckpt.get(key)!r:.80}) disagrees with its "
                                  "config; the file was edited or damaged: re-train or re-download it")


def model_from_checkpoint(ckpt: dict, path: str | Path | None = None) -> LoadedModel:
    where = str(path) if path else "checkpoint"
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{where}: its config is not valid for this stemsplit ({exc})") from None
    _check_header(ckpt, cfg, where)
    model = build_model(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{where}: weights do not match the '{cfg.model.name}' model ({first})") from None
    model.eval()
    return LoadedModel(model=model, config=cfg, meta=dict(ckpt.get("meta", {})),
                       path=Path(path) if path else None)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    return model_from_checkpoint(read_checkpoint(path, map_location), path)
