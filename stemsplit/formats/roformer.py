"""RoFormer checkpoints in the MSST format: a weights file and the YAML config that describes it.

The community BS-RoFormer and Mel-Band RoFormer checkpoints (viperx's, KimberleyJensen's, ...)
were trained with the Music-Source-Separation-Training framework (MSST). Each comes as

- a checkpoint (``.ckpt``, ``.pth`` or ``.pt``) that ``torch.save`` wrote: the model's state
  dict, or a dict holding it under ``state_dict``, ``model_state_dict``, ``state`` or ``model``;
- a YAML config: ``audio`` (chunk_size, sample_rate, num_channels), ``model`` (the network's
  constructor arguments), ``training`` (instruments, target_instrument) and ``inference``
  (num_overlap, batch_size).

``model.freqs_per_bands`` makes it a BS-RoFormer, ``model.num_bands`` a Mel-Band RoFormer
(the two families ``stemsplit.models.publishers`` maps those keys to, whose state-dict names
are MSST's). A model with a ``target_instrument`` separates that one stem (stems: [target]; the
residual is the engine's ``--residual``); otherwise its stems are ``training.instruments``.
The published inference settings become the config's ``separate`` section: segments of
``chunk_size`` samples, overlapping by ``chunk_size - chunk_size // num_overlap``, cut and
blended as MSST's ``demix`` does (``crossfade: linear_fade``, stemsplit/separation/linear_fade.py).

YAML keys of the ``model`` section that only training reads (the multi-resolution STFT loss,
gradient checkpointing) and those that choose an attention kernel without changing the
arithmetic (flash_attn, sage_attention) are ignored and listed in the meta's
``ignored_keys``; ``linear_transformer_depth: 0`` and ``use_pope: false`` are accepted as the
absence of those layers. Any other key changes the network in ways stemsplit does not build,
and the file is refused in one line.

Safety: the YAML is read by a SafeLoader that also knows exactly one Python tag,
``!!python/tuple`` (MSST writes tuples with it), as a list; the weights by
``torch.load(weights_only=True)``. Nothing in either file can run code.
"""
from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path
from typing import Any

import yaml

from stemsplit.errors import CheckpointError, ConfigError
from stemsplit.formats import ModelFiles
from stemsplit.models.publishers import family_for_format

FORMAT = "roformer"
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt")
CONFIG_SUFFIXES = (".yaml", ".yml")

# model-section keys that training reads, or that pick a kernel for the same arithmetic
IGNORED_KEYS = frozenset({
    "multi_stft_resolution_loss_weight", "multi_stft_resolutions_window_sizes", "multi_stft_hop_size",
    "multi_stft_normalized", "use_torch_checkpoint", "flash_attn", "sage_attention", "dim_freqs_in",
    "match_input_audio_length",  # stemsplit always returns the input's length
})
# keys accepted only at the value that means "this layer is absent"
ABSENT_AT = {"linear_transformer_depth": 0, "use_pope": False}
BAND_KEYS = ("freqs_per_bands", "num_bands")  # the band layout key picks the family (models.publishers)


class _MsstYamlLoader(yaml.SafeLoader):
    """SafeLoader plus MSST's ``!!python/tuple`` (read as a list); every other Python tag fails."""


_MsstYamlLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                                lambda loader, node: loader.construct_sequence(node, deep=True))


# --- finding the pair --------------------------------------------------------------------


def _model_section(path: Path) -> dict | None:
    try:
        raw = yaml.load(path.read_text(errors="replace"), Loader=_MsstYamlLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    model = raw.get("model") if isinstance(raw, dict) else None
    return model if isinstance(model, dict) else None


def _is_roformer_yaml(path: Path) -> bool:
    model = _model_section(path)
    return model is not None and "dim" in model and "depth" in model and any(k in model for k in BAND_KEYS)


def _pair(path: Path) -> tuple[Path, Path] | None:
    """(checkpoint, config) that ``path`` (either file, or their folder) stands for, or None."""
    if path.is_dir():
        checkpoints = sorted(p for p in path.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file())
        configs = sorted(p for p in path.iterdir() if p.suffix.lower() in CONFIG_SUFFIXES and p.is_file())
        if len(checkpoints) == 1 and len(configs) == 1:
            return checkpoints[0], configs[0]
        named = [(c, y) for c in checkpoints for y in configs if c.stem == y.stem]
        return named[0] if len(named) == 1 else None
    folder, suffix = path.parent, path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        mates = [folder / (path.stem + s) for s in CONFIG_SUFFIXES]
        others = [p for p in folder.glob("*") if p.suffix.lower() in CONFIG_SUFFIXES]
    elif suffix in CONFIG_SUFFIXES:
        mates = [folder / (path.stem + s) for s in CHECKPOINT_SUFFIXES]
        others = [p for p in folder.glob("*") if p.suffix.lower() in CHECKPOINT_SUFFIXES]
    else:
        return None
    found = [p for p in mates if p.is_file()] or (others if len(others) == 1 else [])
    if not found:
        return None
    return (path, found[0]) if suffix in CHECKPOINT_SUFFIXES else (found[0], path)


def looks_like(path: Path) -> bool:
    """A checkpoint with its YAML beside it (same stem, or the folder's only YAML), either of the
    two files, or a folder holding one such pair; the YAML must describe a RoFormer."""
    path = Path(path)
    pair = _pair(path) if path.exists() else None
    return pair is not None and _is_roformer_yaml(pair[1])


def files_from_path(path: Path) -> ModelFiles:
    path = Path(path)
    pair = _pair(path) if path.exists() else None
    if pair is None:
        raise CheckpointError(f"{path}: no RoFormer checkpoint with its YAML config found there; pass the .ckpt "
                              "with its .yaml beside it (same name), or a folder holding just those two")
    return ModelFiles({"checkpoint": pair[0], "config": pair[1]})


# --- the YAML -> a stemsplit config --------------------------------------------------------


def read_config(path: Path) -> dict:
    """The YAML as a dict (MSST's tuple tag read as a list); CheckpointError if unreadable."""
    try:
        raw = yaml.load(Path(path).read_text(), Loader=_MsstYamlLoader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the RoFormer config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a RoFormer YAML config that stemsplit reads ({first}); "
                              "only plain YAML and !!python/tuple are accepted") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise CheckpointError(f"{path}: a RoFormer config needs a 'model:' section (MSST's YAML format)")
    return raw


def _section(raw: dict, name: str, where: Path) -> dict:
    section = raw.get(name) or {}
    if not isinstance(section, dict):
        raise CheckpointError(f"{where}: its '{name}:' section must be a mapping")
    return section


def network_params(model: dict, where: Path) -> tuple[str, dict, list[str]]:
    """MSST's ``model:`` section -> (family, its params, the keys ignored); refuses unknown keys."""
    from stemsplit.models import model_class

    families = [family_for_format(FORMAT, key) for key in BAND_KEYS if key in model]
    if len(families) != 1:
        raise CheckpointError(f"{where}: the model section must name either freqs_per_bands (BS-RoFormer) or "
                              "num_bands (Mel-Band RoFormer); it names " + ("both" if families else "neither"))
    family = families[0]
    missing = [key for key in ("dim", "depth") if key not in model]
    if missing:
        raise CheckpointError(f"{where}: the model section has no {missing[0]!r} (MSST requires it)")
    defaults = dataclasses.asdict(model_class(family).params_class())  # what MSST builds for a missing key
    params, ignored = dict(defaults), []
    for key, value in model.items():
        if key in defaults:
            params[key] = value
        elif key in IGNORED_KEYS:
            ignored.append(key)
        elif key in ABSENT_AT and value == ABSENT_AT[key]:
            ignored.append(key)
        else:
            what = f"{key}: {value!r}" if key in ABSENT_AT else repr(key)
            raise CheckpointError(f"{where}: model {what} changes the network in a way stemsplit's {family} "
                                  "does not build; this checkpoint cannot run here")
    return family, params, ignored


def _stems(raw: dict, num_stems: Any, where: Path) -> list[str]:
    training = _section(raw, "training", where)
    target, instruments = training.get("target_instrument"), training.get("instruments")
    stems = [target] if target else instruments
    if not isinstance(stems, list) or not stems or not all(isinstance(s, str) and s for s in stems):
        raise CheckpointError(f"{where}: training.instruments (or training.target_instrument) must name the stems")
    if len(stems) != num_stems:
        raise CheckpointError(f"{where}: the model has {num_stems} stem(s) but the config names {stems} "
                              f"({'target_instrument' if target else 'training.instruments'})")
    return stems


def config_dict(raw: dict, where: Path) -> tuple[dict, list[str]]:
    """MSST's YAML -> (a stemsplit config dict, the model keys ignored)."""
    family, params, ignored = network_params(raw["model"], where)
    audio, inference = _section(raw, "audio", where), _section(raw, "inference", where)
    rate = audio.get("sample_rate", 44100)
    chunk = inference.get("chunk_size", audio.get("chunk_size"))
    overlaps = inference.get("num_overlap", 2)
    numbers = {"audio.sample_rate": rate, "audio.chunk_size": chunk, "inference.num_overlap": overlaps}
    for key, value in numbers.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{where}: {key} must be a positive integer, got {value!r}")
    channels = audio.get("num_channels", 2 if params["stereo"] else 1)
    config = {
        "audio": {"sample_rate": rate, "channels": channels},
        "stft": {"n_fft": params["stft_n_fft"], "hop_length": params["stft_hop_length"]},
        "model": {"name": family, **params},
        "stems": _stems(raw, params["num_stems"], where),
        # MSST steps chunk // num_overlap: that many chunks cover each sample
        "separate": {"segment_seconds": chunk / rate, "overlap": (chunk - chunk // overlaps) / chunk,
                     "wiener_iterations": 0, "crossfade": "linear_fade"},
    }
    return config, ignored


# --- the weights ---------------------------------------------------------------------------


def _refusal(path: Path, exc: Exception) -> CheckpointError:
    text = str(exc)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return CheckpointError(f"{path}: refused: its pickle asks for {named.group(1)!r}, which a RoFormer "
                               "checkpoint never holds (stemsplit runs no code from model files); re-download it "
                               "from its publisher")
    first = text.strip().splitlines()[0][:150] if text.strip() else type(exc).__name__
    return CheckpointError(f"{path}: not a readable RoFormer checkpoint ({first}); re-download it")


def read_state_dict(path: Path) -> dict:
    """The checkpoint's tensors by name (float32), read with ``torch.load(weights_only=True)``."""
    import torch

    try:  # mmap: the weights are paged in from the file instead of copied (zip layout only)
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # a refused global, a damaged file: any unpickler step can fail
        raise _refusal(path, exc) from None
    for key in ("state_dict", "model_state_dict", "state", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors (MSST saves model.state_dict()); "
                              "is it a RoFormer checkpoint?")
    for prefix in ("module.", "_orig_mod."):  # DDP / torch.compile wrappers
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in obj.items()}


def _check_keys(model, state: dict, path: Path) -> None:
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    if missing or unexpected:
        example = f"missing e.g. {missing[0]!r}" if missing else f"unexpected e.g. {unexpected[0]!r}"
        raise CheckpointError(f"{path}: its weights do not fit the network its YAML describes ({len(missing)} "
                              f"missing, {len(unexpected)} unexpected, {example}); pass this checkpoint's own YAML")
    for key, value in state.items():
        if value.shape != ours[key].shape:
            raise CheckpointError(f"{path}: its {key!r} has shape {tuple(value.shape)}, the YAML's network needs "
                                  f"{tuple(ours[key].shape)}; pass this checkpoint's own YAML")


def load(files: ModelFiles, *, torch_needed: bool = True):
    """The RoFormer ``files`` hold, as a ``LoadedModel`` in eval mode (torch always: there is
    no ONNX form, so ``torch_needed`` changes nothing)."""
    from stemsplit.checkpoint import LoadedModel
    from stemsplit.config import config_from_dict
    from stemsplit.models import build_model

    if files.options:
        raise CheckpointError(f"roformer model options {sorted(files.options)} are not known; the YAML config "
                              "holds every setting")
    checkpoint, config_path = files.path("checkpoint"), files.path("config")
    config, ignored = config_dict(read_config(config_path), config_path)
    try:
        cfg = config_from_dict(config)
    except ConfigError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    import torch

    with torch.device("meta"):  # shapes only: the file's tensors become the weights, with no second copy
        model = build_model(cfg)
    state = read_state_dict(checkpoint)
    _check_keys(model, state, checkpoint)
    model.load_state_dict(state, strict=True, assign=True)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a family whose derived buffers follow the default device: nothing to compute with
        raise CheckpointError(f"{checkpoint}: {left[0]!r} was not filled from the file; report this as a bug")
    model.eval()
    meta = {"source": files.describe(), "licence": "unknown (a local file)", "format": FORMAT,
            **files.meta, "ignored_keys": sorted(ignored)}
    return LoadedModel(model=model, config=cfg, meta=meta, path=checkpoint)
