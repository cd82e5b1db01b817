"""One place, one pass: what a user names as a model -> what runs it.

    resolve(model, runtime, device)  ->  ResolvedModel (name, origin, runtime, files, runner)

``model`` is None or "default" (the shipped default), a shipped model's name, a public model
of the catalogue (``stemsplit.hub``: downloaded and verified on first use), or a path: a
stemsplit checkpoint (.ckpt), an exported ``.onnx``, or a publisher's own files that an
adapter in ``stemsplit.formats`` recognises (an Open-Unmix folder, a Demucs ``.th``, a RoFormer
checkpoint with its YAML). The runtime is picked once, here: ``auto`` takes ONNX Runtime where
the model has an ONNX form (a shipped ``.onnx``, an ``.onnx`` path, or a graph an adapter builds
without torch and caches) and no GPU is asked for, else torch. ``separate``, ``evaluate``,
``export``, ``ensemble``, ``Separator`` and ``--list-models`` all come through here; the engine
receives only the runner.

Nothing here imports torch or onnxruntime at module level: each runtime's branch imports its own.
"""
from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stemsplit import pretrained
from stemsplit.errors import CheckpointError, ConfigError, MissingExtraError, install_extra
from stemsplit.settings import CPU_DEVICES, check_runtime

if TYPE_CHECKING:
    from stemsplit.checkpoint import LoadedModel
    from stemsplit.config import Config
    from stemsplit.hub.fetch import FetchEvent
    from stemsplit.separation.runner import NetworkRunner

SHIPPED, CATALOGUE, CHECKPOINT, ONNX = "shipped", "catalogue", "checkpoint", "onnx"
Events = Callable[["FetchEvent"], None]  # a public model's download: start, bytes, retries, done


@dataclass
class ResolvedModel:
    """A model ready to separate: where it came from and the runner that computes it.

    ``origin``: shipped, catalogue, checkpoint, onnx, or a publisher's format name (openunmix,
    demucs, roformer) for a user's local copy. ``files``: the local files read (after any
    download or conversion). ``loaded``: the torch model, on the torch runtime only.
    """

    request: str | None
    name: str
    origin: str
    runtime: str
    files: dict[str, Path]
    runner: NetworkRunner
    meta: dict = field(default_factory=dict)
    loaded: LoadedModel | None = None

    @property
    def config(self) -> Config:
        return self.runner.config

    @property
    def stems(self) -> list[str]:
        return list(self.config.stems)

    @property
    def sample_rate(self) -> int:
        return self.config.audio.sample_rate

    @property
    def architecture(self) -> str:
        return self.config.model.name

    def fingerprint(self) -> str:
        """SHA-256 over the model's files, in role order: the key of evaluate's score cache."""
        if len(self.files) == 1:
            return _file_sha256(next(iter(self.files.values())))
        digest = hashlib.sha256()
        for role in sorted(self.files):
            digest.update(f"{role}={_file_sha256(self.files[role])};".encode())
        return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken half-install
        return False


# --- what the request names -------------------------------------------------------------------


@dataclass
class _Source:
    """The request, classified: the files to load on each runtime (None: that runtime cannot)."""

    name: str
    origin: str
    onnx: Callable[[], Path] | None      # the ONNX file (may build and cache it on first call)
    torch: Callable[[], LoadedModel] | None
    files: Callable[[], dict[str, Path]]
    meta: dict = field(default_factory=dict)


def _classify(model: str | None, events: Events | None) -> _Source:
    registry = pretrained.registry()
    shipped = registry.get("models", {})
    if model is None or model == "default":
        model = registry.get("default")
        if model is None:
            raise CheckpointError("no trained model ships with this build yet; pass --model path/to/model.ckpt "
                                  "(make one with `stemsplit train` or scripts/init_checkpoint.py)")
    if model in shipped:
        return _shipped(model, shipped[model])
    entry = _catalogue_entry(model)
    if entry is not None:
        return _public(entry, events)
    path = Path(model).expanduser()
    if path.exists():
        return _local(path)
    if path.suffix or "/" in model or "\\" in model:  # meant as a file: say so, not "unknown name"
        raise CheckpointError(f"model file not found: {path}; check the path, or give a model name "
                              "(stemsplit separate --list-models)")
    public = _catalogue_names()
    raise CheckpointError(f"model {model!r}: no such file, and not a shipped model ({', '.join(shipped) or 'none'})"
                          + (f" or a public one ({', '.join(public)})" if public else "")
                          + "; see stemsplit separate --list-models")


def _shipped(name: str, entry: dict) -> _Source:
    ckpt = pretrained.model_file(entry["file"])
    onnx = pretrained.model_file(entry["onnx"]) if entry.get("onnx") else None
    onnx_ok = onnx is not None and onnx.is_file()

    def torch_model() -> LoadedModel:
        from stemsplit.checkpoint import load_checkpoint

        return load_checkpoint(ckpt)

    return _Source(name, SHIPPED, (lambda: onnx) if onnx_ok else None, torch_model,
                   lambda: {"checkpoint": ckpt, **({"onnx": onnx} if onnx_ok else {})},
                   {"licence": entry.get("licence")})


def _local(path: Path) -> _Source:
    from stemsplit import formats

    adapter = formats.adapter_for_path(path)
    if adapter is not None:
        return _adapted(path.stem if path.is_file() else path.name, adapter.FORMAT, adapter,
                        lambda: adapter.files_from_path(path), {})
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, but not a model folder that stemsplit reads (an Open-Unmix "
                              "model folder, or a Demucs bag); pass a checkpoint or .onnx file")
    if path.suffix.lower() == ".onnx":
        return _Source(path.stem, ONNX, lambda: path, None, lambda: {"onnx": path})

    def torch_model() -> LoadedModel:
        from stemsplit.checkpoint import load_checkpoint

        return load_checkpoint(path)

    return _Source(path.stem, CHECKPOINT, None, torch_model, lambda: {"checkpoint": path})


def _catalogue_entry(name: str):
    from stemsplit.hub import catalogue

    return catalogue.find(name)


def _catalogue_names() -> list[str]:
    from stemsplit.hub import catalogue

    return catalogue.names()


def _public(entry, events: Events | None) -> _Source:
    from stemsplit import formats
    from stemsplit.hub import fetch

    adapter = formats.adapter(entry.format)
    got: dict[str, dict[str, Path]] = {}

    def files():
        if "files" not in got:  # downloaded and verified on first use, then read from the cache
            got["files"] = fetch.ensure(entry, events=events)
        return formats.ModelFiles(dict(got["files"]), options=dict(entry.options))

    return _adapted(entry.name, CATALOGUE, adapter, files, {"licence": entry.licence, "source": entry.title})


def _adapted(name: str, origin: str, adapter, files: Callable, meta: dict) -> _Source:
    """A publisher's files through its adapter: torch always, ONNX where the adapter builds a graph."""
    onnx = None
    if hasattr(adapter, "build_onnx"):
        def onnx() -> Path:
            from stemsplit.hub import cache

            model_files = files()
            return cache.derived(name, model_files.paths, "onnx", adapter.CONVERTER_VERSION,
                                 lambda out: adapter.build_onnx(model_files, out))

    return _Source(name, origin, onnx, lambda: adapter.load(files()), lambda: dict(files().paths), meta)


# --- the one pass ---------------------------------------------------------------------------


def pick_runtime(source: _Source, runtime: str, device: str) -> str:
    """``torch`` or ``onnx`` for ``source``: see the module doc for ``auto``."""
    if runtime == "auto":
        return "onnx" if device in CPU_DEVICES and source.onnx is not None and _installed("onnxruntime") else "torch"
    if runtime == "onnx" and source.onnx is None:
        raise CheckpointError(f"model {source.name!r} has no ONNX form: run it with --runtime torch"
                              + (f", or export it first: stemsplit export --model {source.name} -o "
                                 f"{source.name}.onnx" if source.origin in (SHIPPED, CHECKPOINT) else ""))
    if runtime == "torch" and source.torch is None:
        raise CheckpointError(f"{source.files().get('onnx', source.name)} is an ONNX model, which the torch runtime "
                              "cannot load: run it with --runtime onnx (or pass the checkpoint it was exported from)")
    return runtime


def resolve(model: str | None = None, runtime: str = "auto", device: str = "auto", threads: int | None = None,
            events: Events | None = None) -> ResolvedModel:
    """The model ``model`` names, loaded on the runtime that ``runtime``/``device`` pick.

    ``events`` follows the download of a public model that is not in the cache yet.
    Raises one-line StemsplitErrors: an unknown name, a missing or damaged file, a failed
    download, a runtime that is not installed or cannot run this model."""
    check_runtime(runtime, device)
    if threads is not None and threads < 1:
        raise ConfigError(f"threads: must be >= 1, got {threads}")
    source = _classify(model, events)
    chosen = pick_runtime(source, runtime, device)
    if chosen == "onnx":
        from stemsplit.separation.onnx_runner import load_onnx_runner

        graph = source.onnx()
        runner = load_onnx_runner(graph, threads=threads)
        return ResolvedModel(model, source.name, source.origin, "onnx", {**source.files(), "onnx": graph}, runner,
                             {**runner.meta, **_known(source.meta)})
    if not _installed("torch"):
        if runtime == "torch":
            raise MissingExtraError("separate --runtime torch", "torch")
        raise ConfigError(f"model {source.name!r} runs on torch, which is not installed: {install_extra('train')}"
                          + (", or export it to ONNX (stemsplit export) where torch is installed"
                             if source.origin in (SHIPPED, CHECKPOINT) else ""))
    import torch

    from stemsplit.separation.torch_runner import TorchRunner

    if threads is not None:
        torch.set_num_threads(threads)
    loaded = source.torch()
    loaded.model.eval()
    return ResolvedModel(model, source.name, source.origin, "torch", source.files(),
                         TorchRunner(loaded.model, loaded.config, device), {**loaded.meta, **_known(source.meta)},
                         loaded)


def load_torch(model: str | None) -> LoadedModel:
    """The torch model of ``model`` on the CPU (export, ensemble fitting, evaluation probes)."""
    return resolve(model, runtime="torch", device="cpu").loaded


def display_name(model: str | None) -> str:
    """The name used in output paths, without loading anything: the shipped or public name, or
    the file's stem (a folder's name)."""
    if model is None or model == "default":
        return pretrained.registry().get("default") or "model"
    path = Path(model).expanduser()
    if model in pretrained.registry().get("models", {}):
        return model
    return path.name if path.is_dir() else path.stem


def list_models() -> dict[str, list[dict]]:
    """What --list-models shows: {"shipped": registry rows, "public": catalogue rows (cached or not)}."""
    from stemsplit import hub

    return {"shipped": pretrained.list_models(), "public": hub.listing()}


def _known(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if v is not None}
