"""Engine settings and the device picker, shared by ``separate``, ``evaluate`` and ``train``.

``EngineSettings`` holds the flags that change how a model separates audio. Every entry
point builds one, calls ``checked()`` before any work starts, and hands it to the engine, so
the three commands accept the same flags, with the same defaults and the same errors.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

from stemsplit.errors import ConfigError, DeviceError

RUNTIMES = ("auto", "torch", "onnx")  # what runs a model's network (stemsplit.resolver picks for auto)
CPU_DEVICES = ("auto", "cpu")  # the devices ONNX Runtime serves here
MAX_SEGMENT_SECONDS = 3600.0  # an hour: longer segments only cost memory
MAX_SHIFTS = 64
MAX_WIENER_ITERATIONS = 100
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class EngineSettings:
    """None means "the model's own default" (its config's ``separate`` section)."""

    segment_seconds: float | None = None
    overlap: float | None = None  # fraction of the segment, in [0, 1)
    # >1: average over that many passes on time shifts (sub-hop; or random offsets up to 0.5 s for a
    # model with separate.crossfade: triangle); None: the model's own separate.shifts
    shifts: int | None = None
    wiener_iterations: int | None = None
    device: str = "auto"

    def checked(self) -> EngineSettings:
        """Self, after checking every value is finite and in range; ConfigError names the flag.

        The entry points (run_separate, Separator, Engine) each call it; the settings are
        frozen, so the checks run once per distinct settings and later calls return at once."""
        return _checked(self)

    def cache_fields(self) -> dict:
        """The fields that change a model's estimates (the device changes only rounding)."""
        out = asdict(self)
        out.pop("device")
        return out


def _finite(flag: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{flag} {value}: must be a finite number")


@functools.lru_cache(maxsize=64)
def _checked(settings: EngineSettings) -> EngineSettings:
    """EngineSettings.checked's work, once per distinct (frozen, hashable) settings."""
    seg = settings.segment_seconds
    if seg is not None:
        _finite("--segment", seg)
        if not 0 < seg <= MAX_SEGMENT_SECONDS:
            raise ConfigError(f"--segment {seg:g}: must be > 0 and at most {MAX_SEGMENT_SECONDS:g} "
                              "seconds; leave it out to use the model's own segment length")
    if settings.overlap is not None:
        _finite("--overlap", settings.overlap)
        if not 0 <= settings.overlap < 1:
            raise ConfigError(f"--overlap {settings.overlap:g}: must be a fraction in [0, 1), e.g. 0.25")
    if settings.shifts is not None and not 0 <= settings.shifts <= MAX_SHIFTS:
        raise ConfigError(f"--shifts {settings.shifts}: must be between 0 and {MAX_SHIFTS}")
    wi = settings.wiener_iterations
    if wi is not None and not 0 <= wi <= MAX_WIENER_ITERATIONS:
        raise ConfigError(f"--wiener-iterations {wi}: must be between 0 and {MAX_WIENER_ITERATIONS}")
    check_device_name(settings.device)
    return settings


def check_runtime(runtime: str, device: str = "auto") -> None:
    """--runtime's syntax and its combination with --device, before anything loads."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "onnx" and device not in CPU_DEVICES:
        raise ConfigError(f"--runtime onnx runs on the CPU, not --device {device}; "
                          "use --runtime torch for a GPU, or leave --device out")


def check_device_name(name: str) -> None:
    """Syntax only (no torch import): auto, cpu, cuda, cuda:N or mps."""
    if name in ("auto", "cpu", "cuda", "mps"):
        return
    if name.startswith("cuda:") and name[5:].isdigit():
        return
    raise DeviceError(f"--device {name!r}: not a device; use {DEVICE_CHOICES}")


def pick_device(name: str, local_rank: int = 0):
    """The torch device for ``name``; ``auto`` picks CUDA, then Apple MPS, then the CPU.

    ``local_rank`` picks the GPU of a torchrun process when ``name`` names no index.
    An unavailable choice is a DeviceError that says what to use instead.
    """
    import torch

    check_device_name(name)
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if mps_ok else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no CUDA GPU is available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here; "
                              f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not mps_ok:
        raise DeviceError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu")
    return device
