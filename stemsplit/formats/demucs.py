"""Demucs 4's model files -> stemsplit's Demucs families: one network, or a bag of several.

The publisher ships a named model as a *bag*: a YAML file (``models``: signatures, optional
``weights`` (models, sources) and ``segment``) and one file per signature, in two forms:

- Hugging Face (``adefossez/HTDemucs``, ``HTDemucs-ft``, ``HTDemucs-6s``; demucs/hf.py):
  ``<sig>.safetensors`` whose metadata holds ``klass`` (e.g. "demucs.htdemucs.HTDemucs") and the
  constructor's ``args`` / ``kwargs`` as JSON (a fraction as {"_type": "fraction", ...}).
- legacy (dl.fbaipublicfiles.com/demucs/; demucs/states.py): ``<sig>-<sha256 prefix>.th``, a
  torch pickle of {klass, args, kwargs, state (float16), training_args, metrics}.

Nothing a file names is imported or called (``demucs_files.py`` reads them). Only Hybrid
Transformer Demucs is supported; the older HDemucs / Demucs models (hdemucs_mmi, mdx*) are refused
in one line. The separation settings are the publisher's: ``apply_model`` with the demucs CLI's
defaults (triangle cross-fade, overlap 0.25, one random shift, the model's training segment).
"""
from __future__ import annotations

import importlib.util
import zipfile
from fractions import Fraction
from pathlib import Path

import yaml

from stemsplit.config import ConfigError, config_from_dict
from stemsplit.errors import CheckpointError, MissingExtraError
from stemsplit.formats import ModelFiles
from stemsplit.formats.demucs_files import SIGNED, read_safetensors_model, read_th_model, verify_signed_name
from stemsplit.formats.safetensors import read_header
from stemsplit.models.publishers import family_for_format

FORMAT = "demucs"
LICENCE = "MIT"
BAG_ROLE = "bag"
# the demucs CLI's apply_model settings; segment_seconds comes from the model files
PUBLISHED_SEPARATE = {"overlap": 0.25, "crossfade": "triangle", "transition_power": 1.0, "shifts": 1,
                      "wiener_iterations": 0}
# constructor arguments that only train or initialise the network (or configure modes that their own
# switch refuses): accepted and dropped
_NOT_AT_INFERENCE = {"end_iters", "wiener_residual", "multi_freqs_depth", "emb_smooth", "dconv_init", "t_dropout",
                     "t_max_positions", "t_weight_decay", "t_lr", "t_cape_mean_normalize", "t_cape_augment",
                     "t_cape_glob_loc_scale", "t_mask_type", "t_mask_random_seed", "t_sparse_attn_window",
                     "t_global_window", "t_sparsity", "rescale"}


# --- the publisher's constructor arguments -> our config ----------------------------------------------


def network_section(args: list, kwargs: dict, where: Path) -> tuple[dict, list[str], int, int]:
    """(model section of one network, sources, audio channels, sample rate) from the constructor's arguments."""
    from stemsplit.models import model_class

    kwargs = dict(kwargs)
    if args:
        if len(args) > 1 or "sources" in kwargs:
            raise CheckpointError(f"{where}: unexpected positional constructor arguments {args!r:.80}")
        kwargs["sources"] = args[0]
    sources = kwargs.pop("sources", None)
    if not isinstance(sources, (list, tuple)) or not sources or not all(isinstance(s, str) for s in sources):
        raise CheckpointError(f"{where}: its constructor arguments name no sources")
    channels = kwargs.pop("audio_channels", 2)
    fields = set(model_class(family_for_format(FORMAT, "network")).params_class.__dataclass_fields__)
    unknown = sorted(set(kwargs) - fields - _NOT_AT_INFERENCE)
    if unknown:
        raise CheckpointError(f"{where}: constructor argument {unknown[0]!r} is not one stemsplit knows for "
                              "HTDemucs; the file is from a newer or modified Demucs")
    params = {k: v for k, v in kwargs.items() if k in fields}
    if params.get("channels_time", 0) is None:
        params["channels_time"] = 0
    for key, value in params.items():
        if isinstance(value, Fraction):
            params[key] = float(value)
    rate = int(params.setdefault("samplerate", 44100))
    return {"name": family_for_format(FORMAT, "network"), **params}, list(sources), int(channels), rate


# --- finding the files ----------------------------------------------------------------------------


def _member_file(folder: Path, sig: str) -> Path | None:
    """``<sig>.safetensors``, else ``<sig>.th`` or the one ``<sig>-<sha256 prefix>.th``."""
    for name in (f"{sig}.safetensors", f"{sig}.th"):
        if (folder / name).is_file():
            return folder / name
    signed = sorted(folder.glob(f"{sig}-*.th"))
    return signed[0] if len(signed) == 1 else None


def _read_bag(path: Path) -> dict:
    try:
        bag = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise CheckpointError(f"{path} is not a readable Demucs bag YAML") from None
    models = bag.get("models") if isinstance(bag, dict) else None
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise CheckpointError(f"{path} is not a Demucs bag: it needs a 'models' list of signatures")
    return bag


def _bag_in(folder: Path) -> Path | None:
    bags = []
    for candidate in sorted(folder.glob("*.yaml")):
        try:
            bags.append((candidate, _read_bag(candidate)))
        except CheckpointError:
            continue
    complete = [p for p, bag in bags if all(_member_file(folder, sig) for sig in bag["models"])]
    return complete[0] if len(complete) == 1 else None


def _is_demucs_th(path: Path) -> bool:
    """A torch file that pickles a Demucs model class (the pickle alone is read, not unpickled)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return bool(pkl) and b"demucs." in zf.read(pkl[0]) and b"klass" in zf.read(pkl[0])
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        return b"demucs." in head and b"klass" in head
    except (OSError, zipfile.BadZipFile):
        return False


def looks_like(path: Path) -> bool:
    """A Demucs ``.th``, a ``.safetensors`` with Demucs metadata, a bag YAML beside its files, or a
    folder holding one complete bag. Cheap: no torch, no tensor data."""
    path = Path(path)
    if path.is_dir():
        return _bag_in(path) is not None
    if path.suffix == ".th":
        return path.is_file() and _is_demucs_th(path)
    if path.suffix == ".safetensors" and path.is_file():
        try:
            return read_header(path)[1].get("klass", "").startswith("demucs.")
        except CheckpointError:
            return False
    if path.suffix == ".yaml" and path.is_file():
        try:
            return all(_member_file(path.parent, sig) for sig in _read_bag(path)["models"])
        except CheckpointError:
            return False
    return False


def files_from_path(path: Path) -> ModelFiles:
    """A user's file or folder as ModelFiles: {"bag": yaml, <sig>: file, ...} or {<sig>: file}."""
    path = Path(path)
    bag = _bag_in(path) if path.is_dir() else path if path.suffix == ".yaml" else None
    if bag is None:
        if path.is_dir():
            raise CheckpointError(f"{path}: no Demucs bag YAML with all of its model files in this folder")
        match = SIGNED.fullmatch(path.stem)
        return ModelFiles({match["sig"] if match else path.stem: path})
    members = {sig: _member_file(bag.parent, sig) for sig in _read_bag(bag)["models"]}
    missing = [sig for sig, p in members.items() if p is None]
    if missing:
        raise CheckpointError(f"{bag}: model file {missing[0]}.safetensors or {missing[0]}-*.th is not beside it")
    return ModelFiles({BAG_ROLE: bag, **members})


# --- building the model -----------------------------------------------------------------------------


def _read_member(path: Path) -> tuple[dict, list[str], int, int, dict]:
    if path.suffix == ".safetensors":
        _, args, kwargs, state = read_safetensors_model(path)
    else:
        verify_signed_name(path)
        _, args, kwargs, state = read_th_model(path)
    return (*network_section(args, kwargs, path), state)


def load(files: ModelFiles, *, torch_needed: bool = True):
    """The model of ``files`` (a bag or one network) with the publisher's weights, in eval mode, and
    its Config (stems in the publisher's order, the published separation settings). Without a
    "bag" file, ``files.options`` may give the bag's ``models`` (signature order), ``weights`` and
    ``segment``. HTDemucs runs on torch only, whatever ``torch_needed`` says."""
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError("separate with a Demucs model", "torch")
    import torch

    from stemsplit.checkpoint import LoadedModel
    from stemsplit.models import build_model

    # the bag's facts: its YAML, else the caller's options (the legacy source has no bag file online)
    bag = _read_bag(files.path(BAG_ROLE)) if BAG_ROLE in files.paths else dict(files.options)
    sigs = bag.get("models") or [r for r in files.roles if r != BAG_ROLE]
    if not isinstance(sigs, list) or not all(isinstance(sig, str) for sig in sigs):
        raise CheckpointError(f"{files.describe()}: the bag's 'models' must be a list of signatures, got {sigs!r:.80}")
    members = [_read_member(files.path(sig)) for sig in sigs]
    section, sources, channels, rate, _ = members[0]
    for sig, (_, other_sources, other_channels, other_rate, _) in zip(sigs, members):
        if (other_sources, other_channels, other_rate) != (sources, channels, rate):
            raise CheckpointError(f"{files.describe()}: model {sig} separates {other_sources} at {other_rate} Hz, "
                                  f"unlike {sigs[0]} ({sources} at {rate} Hz); the bag is inconsistent")
    sections = [m[0] for m in members]
    if bag.get("segment") is not None:  # the bag's segment shortens its members' (never lengthens them)
        for s in sections:
            s["segment"] = min(float(bag["segment"]), float(s.get("segment", 10.0)))
    weights = bag.get("weights") or []
    single = len(sections) == 1 and all(w > 0 for row in weights for w in row)
    bag_section = {"name": family_for_format(FORMAT, "bag"), "members": sections, "weights": weights}
    model_section = sections[0] if single else bag_section
    segment = min(float(s.get("segment", 10.0)) for s in sections)
    raw = {"audio": {"sample_rate": rate, "channels": channels}, "stems": sources, "model": model_section,
           "stft": {"n_fft": sections[0].get("nfft", 4096), "hop_length": sections[0].get("nfft", 4096) // 4},
           "separate": {"segment_seconds": segment, **PUBLISHED_SEPARATE}}
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        raise CheckpointError(f"{files.describe()}: its model cannot be built here ({exc})") from None
    model = build_model(cfg)
    networks = [model] if single else list(model.members)
    for sig, network, member in zip(sigs, networks, members):
        # float16 as published -> the network's float32, as the publisher loads it; one member at a time
        state = {key: torch.as_tensor(value) for key, value in member[4].items()}
        state = {key: t.float() if t.is_floating_point() else t for key, t in state.items()}
        member[4].clear()
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{files.path(sig)}: weights do not match its HTDemucs arguments "
                                  f"({str(exc).splitlines()[-1].strip()[:160]})") from None
        del state
    model.eval()
    meta = {"source": files.describe(), "licence": LICENCE, "format": FORMAT, **files.meta}
    first = next(iter(files.paths.values()))
    return LoadedModel(model=model, config=cfg, meta=meta, path=first)
