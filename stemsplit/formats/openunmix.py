"""Open-Unmix's model files -> stemsplit's Open-Unmix family (torch), or an ONNX graph (no torch).

What open-unmix writes (``scripts/train.py`` of open-unmix 1.1-1.3) is a folder::

    separator.json        {"nfft": 4096, "nhop": 1024, "sample_rate": 44100, "nb_channels": 2}
    <target>.json         {"args": {"nfft", "nhop", "hidden_size", "nb_channels", "bandwidth", ...}, ...}
    <target>.pth          the target network's state dict (torch.save)

The published umxhq / umxl weights are bare ``<target>-<sha256 prefix>.pth`` files. Most of a
model is read off its weights' shapes: hidden size (fc1 rows), max_bin (input_mean), bins and
channels (fc3 rows), layers and directions (the recurrent weights' names). The rest comes from
the folder's JSONs or the caller's ``ModelFiles.options`` (a catalogue entry's), in
open-unmix's own words: ``targets`` (the stems' order), ``sample_rate``, ``n_hop``, ``niter``,
``wiener_win_len``, ``residual`` (must be false), and as checks against the weights
``n_fft``, ``hidden_size``, ``nb_channels``, ``max_bin``, ``bandwidth_hz``; ``separate``
(a mapping) overrides stemsplit separation settings. What nobody says takes open-unmix's
defaults (``DEFAULTS``: 44.1 kHz, hop 1024, one EM iteration on 300-frame windows). Files
written by open-unmix 1.0 (the umxhq weights) also hold ``sample_rate`` and two STFT windows,
which are checked and dropped. Weights are read with ``torch_pickle``: no code runs from them.

Separation follows open-unmix's published inference (``umx`` CLI, ``Separator``): the Wiener
EM with its window, scale and loading conventions, no softmask, no residual. Segments are cut
on its Wiener windows (``separate_settings``), so the stems match its whole-track run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from stemsplit.config import Config, ConfigError, config_from_dict
from stemsplit.errors import CheckpointError
from stemsplit.formats import ModelFiles
from stemsplit.formats.torch_pickle import read_state_dict
from stemsplit.models.publishers import family_for_format

FORMAT = "openunmix"
STANDARD_STEMS = ("vocals", "drums", "bass", "other")
SEPARATOR = "separator"
CONVERTER_VERSION = 1  # of build_onnx's graph: a new version makes cached conversions stale
# open-unmix's own defaults (its Separator and the umxhq/umxl loaders): what neither the files nor
# the caller's options say. Its Wiener filter (filtering.wiener) also fixes scale_factor=10 and
# eps=1e-10, whose square root loads the covariance's diagonal: see separate_settings
DEFAULTS = {"sample_rate": 44100, "n_hop": 1024, "niter": 1, "wiener_win_len": 300}
SEGMENT_WINDOWS = 5  # Wiener windows per segment (one of them overlapping the next segment)
# keys of open-unmix 1.0 state dicts (its STFT lived inside the model) that the network does not use
_STFT_KEYS = ("stft.window", "transform.0.window")
_RATE_KEY = "sample_rate"
_BATCH_NORMS = ("bn1", "bn2", "bn3")


# --- finding the files ------------------------------------------------------------------------


def _weights_for(folder: Path, target: str) -> Path | None:
    """``<target>.pth``, else the one ``<target>-<hash>.pth`` (the names open-unmix's loader accepts)."""
    exact = folder / f"{target}.pth"
    if exact.is_file():
        return exact
    hashed = sorted(p for p in folder.glob("*.pth") if re.fullmatch(re.escape(target) + r"-[0-9a-f]+", p.stem))
    return hashed[0] if len(hashed) == 1 else None


def _targets_in(folder: Path) -> list[str]:
    """The targets of a model folder: each ``<target>.json`` with its weights, standard stems first."""
    found = [p.stem for p in folder.glob("*.json") if p.stem != SEPARATOR and _weights_for(folder, p.stem)]
    return [s for s in STANDARD_STEMS if s in found] + sorted(s for s in found if s not in STANDARD_STEMS)


def looks_like(path: str | Path) -> bool:
    """Is ``path`` an open-unmix model folder (separator.json, and <target>.json + .pth per target)?"""
    folder = Path(path).expanduser()
    try:
        return folder.is_dir() and (folder / f"{SEPARATOR}.json").is_file() and bool(_targets_in(folder))
    except OSError:
        return False


def files_from_path(path: str | Path) -> ModelFiles:
    """A user's open-unmix model folder as ModelFiles: {separator, <target>, <target>.json}."""
    folder = Path(path).expanduser()
    if not looks_like(folder):
        raise CheckpointError(f"{folder}: not an open-unmix model folder (it needs separator.json, and "
                              "<target>.json with <target>.pth for each target); point --model at that folder")
    paths: dict[str, Path] = {SEPARATOR: folder / f"{SEPARATOR}.json"}
    for target in _targets_in(folder):
        paths[target] = _weights_for(folder, target)
        paths[f"{target}.json"] = folder / f"{target}.json"
    return ModelFiles(paths, meta={"source": str(folder)})


def stems_of(files: ModelFiles) -> list[str]:
    """The targets, in the files' order: every role that is not separator.json or a target's JSON."""
    stems = [r for r in files.roles if r != SEPARATOR and not r.endswith(".json")]
    if not stems:
        raise CheckpointError(f"{files.describe()}: no target weights (<target>.pth) among the model's files")
    return stems


# --- what the files describe ------------------------------------------------------------------


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({str(exc)[:80]}); re-save the model folder") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _shape_params(shapes: dict[str, tuple], where: str) -> dict[str, Any]:
    """The network's size, read off one target's tensor shapes."""
    need = ("fc1.weight", "fc2.weight", "fc3.weight", "input_mean", "output_mean")
    missing = [k for k in need if k not in shapes]
    if missing:
        raise CheckpointError(f"{where}: not an Open-Unmix target network (no {missing[0]!r} weights)")
    layers = sorted(int(m.group(2)) for k in shapes if (m := re.fullmatch(r"(\w+)\.weight_ih_l(\d+)", k)))
    fits = (len(shapes["fc1.weight"]) == 2 and len(shapes["input_mean"]) == 1 and len(shapes["output_mean"]) == 1
            and layers and layers == list(range(len(layers))))
    if fits:
        (hidden, inputs), (max_bin,), (n_bins,) = shapes["fc1.weight"], shapes["input_mean"], shapes["output_mean"]
        fits = hidden > 0 and max_bin > 0 and n_bins >= 2 and inputs % max_bin == 0 and inputs > 0
    if not fits:
        raise CheckpointError(f"{where}: its recurrent layers or bins do not fit Open-Unmix's network")
    return {"hidden_size": hidden, "max_bin": max_bin, "num_layers": len(layers),
            "unidirectional": not any(k.endswith("_reverse") for k in shapes),
            "nb_channels": inputs // max_bin, "n_fft": 2 * (n_bins - 1)}


def bandwidth_to_max_bin(rate: float, n_fft: int, bandwidth: float) -> int:
    """Bins whose centre frequency is at most ``bandwidth`` Hz (how open-unmix sizes max_bin)."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0])) + 1


def _check(found: dict, key: str, claimed: Any, where: str) -> None:
    if claimed is not None and claimed != found[key]:
        raise CheckpointError(f"{where}: says {key} {claimed!r}, but the weights have {found[key]!r}; "
                              "the files do not belong together")


def _whole(value: Any, key: str, files: ModelFiles, least: int = 1) -> int:
    """A whole number >= ``least`` (JSON may spell 44100 as 44100.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least or value != int(value):
        raise CheckpointError(f"{files.describe()}: its {key} {value!r} is not a whole number >= {least}")
    return int(value)


def _read_claims(files: ModelFiles, found: dict) -> dict:
    """Rate, hop and the separation settings from the JSONs and the caller's options, each checked
    against the weights where the weights tell it too. Unknowns take open-unmix's defaults."""
    options, sep = files.options, _json(files.path(SEPARATOR)) if SEPARATOR in files.paths else {}
    args = {}
    for stem in stems_of(files):
        if f"{stem}.json" in files.paths:
            args = _json(files.path(f"{stem}.json")).get("args")
            args = args if isinstance(args, dict) else {}
            where = str(files.path(f"{stem}.json"))
            for key, name in (("n_fft", "nfft"), ("hidden_size", "hidden_size"), ("nb_channels", "nb_channels")):
                _check(found, key, args.get(name), where)
    if sep:
        _check(found, "n_fft", sep.get("nfft"), str(files.path(SEPARATOR)))
        _check(found, "nb_channels", sep.get("nb_channels"), str(files.path(SEPARATOR)))
    for key in ("n_fft", "hidden_size", "nb_channels", "max_bin"):
        _check(found, key, options.get(key), f"{files.describe()} (catalogue options)")
    rate = _whole(options.get("sample_rate") or sep.get("sample_rate") or DEFAULTS["sample_rate"], "sample_rate",
                  files)
    hop = _whole(options.get("n_hop") or sep.get("nhop") or args.get("nhop") or DEFAULTS["n_hop"], "n_hop", files)
    for bandwidth in (options.get("bandwidth_hz"), args.get("bandwidth")):
        if bandwidth is not None:
            bandwidth = _whole(bandwidth, "bandwidth", files)
            _check(found, "max_bin", bandwidth_to_max_bin(rate, found["n_fft"], bandwidth), files.describe())
    if options.get("residual"):
        raise CheckpointError(f"{files.describe()}: Open-Unmix's residual target is not supported; "
                              "use the model's own targets")
    window = options.get("wiener_win_len", DEFAULTS["wiener_win_len"])  # None: the whole track at once
    return {"sample_rate": rate, "n_hop": hop, "niter": _whole(options.get("niter", DEFAULTS["niter"]), "niter",
                                                               files, least=0),
            "wiener_win_len": 0 if window is None else _whole(window, "wiener_win_len", files, least=0)}


def separate_settings(rate: float, hop: int, niter: int, window: int) -> dict:
    """The published settings as stemsplit's ``separate`` section. Segments are five Wiener windows
    long and overlap by one, so every segment starts on a window boundary of the whole track:
    each window's filter sees the frames it sees in open-unmix's whole-track run."""
    out = {"wiener_iterations": int(niter), "wiener_window_frames": int(window),
           "wiener_scale_divisor": 10.0, "wiener_load": 1e-5}
    if window > 0:
        out.update(segment_seconds=SEGMENT_WINDOWS * window * hop / rate, overlap=1.0 / SEGMENT_WINDOWS)
    else:  # the whole track in one filter: no segment length can match it, so the usual one
        out.update(segment_seconds=60.0, overlap=0.1)
    return out


def describe(files: ModelFiles) -> tuple[Config, dict]:
    """The model's stemsplit Config and meta, without torch and without reading the weights' data."""
    stems = stems_of(files)
    order = files.options.get("targets")
    if order is not None and (not isinstance(order, list) or sorted(map(str, order)) != sorted(stems)):
        raise CheckpointError(f"{files.describe()}: the catalogue names targets {order}, the files are {stems}")
    stems = list(order or stems)
    found: dict[str, Any] = {}
    for stem in stems:
        path = files.path(stem)
        shapes = _shape_params(read_state_dict(path, shapes_only=True), str(path))
        if found and shapes != found:
            raise CheckpointError(f"{path}: its network differs from {stems[0]!r}'s ({shapes} vs {found}); "
                                  "every target of one model must have the same size")
        found = shapes
    claims = _read_claims(files, found)
    separate = separate_settings(claims["sample_rate"], claims["n_hop"], claims["niter"], claims["wiener_win_len"])
    raw = {"audio": {"sample_rate": claims["sample_rate"], "channels": found["nb_channels"]},
           "stft": {"n_fft": found["n_fft"], "hop_length": claims["n_hop"]},
           "model": {"name": family_for_format(FORMAT, "network"),
                     **{k: found[k] for k in ("hidden_size", "num_layers", "max_bin", "unidirectional")}},
           "stems": stems, "separate": {**separate, **files.options.get("separate", {})}}
    try:
        config = config_from_dict(raw, model_params=False)
    except ConfigError as exc:
        raise CheckpointError(f"{files.describe()}: these files do not make a usable model ({exc})") from None
    meta = {"source": files.describe(), "licence": "unknown: see the model's publisher", **files.meta,
            "format": FORMAT}
    return config, meta


# --- weights ----------------------------------------------------------------------------------


def target_weights(files: ModelFiles, stem: str, config: Config) -> dict[str, np.ndarray]:
    """One target's state dict as numpy arrays, under the publisher's key names (as in
    open-unmix 1.1+: 1.0's STFT windows and rate dropped, BatchNorm counters added if absent)."""
    path = files.path(stem)
    state = read_state_dict(path)
    rate = state.pop(_RATE_KEY, None)
    if rate is not None and (rate.size != 1 or float(rate.reshape(())) != config.audio.sample_rate):
        raise CheckpointError(f"{path}: its sample_rate {rate.reshape(-1)[:1]} is not the model's "
                              f"{config.audio.sample_rate} Hz; the files do not belong together")
    for key in _STFT_KEYS:
        state.pop(key, None)
    for bn in _BATCH_NORMS:
        state.setdefault(f"{bn}.num_batches_tracked", np.zeros((), np.int64))
    return state


def load(files: ModelFiles, *, torch_needed: bool = True):
    """The model as a ``stemsplit.checkpoint.LoadedModel`` on torch (eval mode), its weights mapped in:
    target ``i``'s key ``k`` becomes ``targets.<i>.<k>``.

    ``torch_needed`` is accepted for the adapters' common interface: this format runs without
    torch through ``build_onnx`` (and ``describe`` gives its config without torch), so ``load``
    always builds the torch model."""
    import torch

    from stemsplit.checkpoint import LoadedModel
    from stemsplit.config import config_to_dict
    from stemsplit.models import build_model

    config, meta = describe(files)
    config = config_from_dict(config_to_dict(config))  # the model section as the family's params
    state = {}
    for i, stem in enumerate(config.stems):
        for key, value in target_weights(files, stem, config).items():
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            state[f"targets.{i}.{key}"] = tensor.float() if tensor.is_floating_point() else tensor
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        detail = " ".join(str(exc).split())[len(first):][:160]
        raise CheckpointError(f"{files.describe()}: its weights do not fit Open-Unmix's network ({first}{detail})"
                              ) from None
    first_file = files.path(config.stems[0])
    return LoadedModel(model=model.eval(), config=config, meta=meta,
                       path=first_file.parent if SEPARATOR in files.paths else first_file)


def build_onnx(files: ModelFiles, out: str | Path) -> None:
    """Write the model as a stemsplit ONNX file at ``out`` (atomically), without torch."""
    from stemsplit.formats.openunmix_onnx import write_onnx

    config, meta = describe(files)
    write_onnx(config, meta, {stem: target_weights(files, stem, config) for stem in config.stems}, Path(out))
