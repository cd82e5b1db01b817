"""Which runtime runs a model's network: torch or ONNX Runtime, and ``auto`` choosing between them.

``auto`` takes ONNX Runtime when the model has an ONNX form (a shipped model with its .onnx, or
a *.onnx path), onnxruntime is installed and no GPU was asked for (``--device auto`` or ``cpu``:
the ONNX path runs on the CPU); otherwise torch. The lean install (no torch) thus separates
shipped models on ONNX Runtime, and a checkpoint or ``--device cuda`` needs the train extra.

Nothing here imports torch or onnxruntime at module level: each branch imports its own.
"""
from __future__ import annotations

import importlib.util

from stemsplit.errors import ConfigError, MissingExtraError, install_extra
from stemsplit.separation.runner import NetworkRunner

RUNTIMES = ("auto", "torch", "onnx")
CPU_DEVICES = ("auto", "cpu")  # the devices ONNX Runtime serves here


def check_runtime(runtime: str, device: str = "auto") -> None:
    """Syntax and combination checks, before anything loads; ConfigError names the flag."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "onnx" and device not in CPU_DEVICES:
        raise ConfigError(f"--runtime onnx runs on the CPU, not --device {device}; "
                          "use --runtime torch for a GPU, or leave --device out")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken half-install
        return False


def has_onnx_form(model: str | None) -> bool:
    """Whether ``model`` (a shipped name, a path, None for the default) has an ONNX file here."""
    from stemsplit import pretrained

    return pretrained.onnx_path(model) is not None


def pick_runtime(model: str | None, runtime: str = "auto", device: str = "auto") -> str:
    """``torch`` or ``onnx`` for this model, as ``auto`` decides (see module doc)."""
    check_runtime(runtime, device)
    if runtime != "auto":
        return runtime
    if device in CPU_DEVICES and _installed("onnxruntime") and has_onnx_form(model):
        return "onnx"
    return "torch"


def load_runner(model: str | None, runtime: str = "auto", device: str = "auto",
                threads: int | None = None) -> NetworkRunner:
    """The network of ``model`` (shipped name, checkpoint or .onnx path, None: the default model)
    on the chosen runtime, ready for ``Engine``. ``threads`` caps the runtime's CPU threads."""
    chosen = pick_runtime(model, runtime, device)
    if chosen == "onnx":
        if not _installed("onnxruntime"):  # a base dependency: only a broken install lacks it
            raise ConfigError("--runtime onnx needs onnxruntime, which is not installed: pip install onnxruntime")
        from stemsplit.pretrained import resolve_onnx
        from stemsplit.separation.onnx_runner import load_onnx_runner

        return load_onnx_runner(resolve_onnx(model), threads=threads)
    if not _installed("torch"):
        if runtime == "torch":
            raise MissingExtraError("separate --runtime torch", "torch")
        raise ConfigError(f"model {model or 'default'!r} has no ONNX form here and torch is not installed: "
                          f"{install_extra('train')} to run it on torch, or export it to ONNX "
                          "(stemsplit export) where torch is installed")
    return _torch_runner(model, device, threads)


def _torch_runner(model: str | None, device: str, threads: int | None) -> NetworkRunner:
    import torch

    from stemsplit.pretrained import resolve_model
    from stemsplit.separation.torch_runner import TorchRunner

    if threads is not None:
        torch.set_num_threads(threads)
    loaded = resolve_model(model)
    loaded.model.eval()
    return TorchRunner(loaded.model, loaded.config, device)
