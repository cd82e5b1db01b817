"""The one family of errors a user can act on.

Every error that bad input, a bad file or a bad flag can cause subclasses ``StemsplitError``.
Its message is one line: what failed, where, and what to do. The CLI prints it as
``error: <message>`` and exits with code 2; no traceback reaches a user for bad input.
Library users (the Python API) catch ``StemsplitError``.
"""
from __future__ import annotations


class StemsplitError(Exception):
    """Base class: a one-line, actionable message meant for people."""

    exit_code = 2


class ConfigError(StemsplitError, ValueError):
    """A configuration value, config file or flag that cannot be used."""


class ModelError(StemsplitError, ValueError):
    """A model that cannot take its input or its settings (shape, n_fft, stems)."""


class DeviceError(StemsplitError):
    """A requested compute device that is not available here."""


def install_extra(extra: str) -> str:
    """How to add an optional extra, as a user reads it. The package installs from a checkout or
    a built wheel: "stemsplit" on the public package index is an unrelated project."""
    return f'pip install ".[{extra}]" in a stemsplit checkout (or the wheel with [{extra}])'


class MissingExtraError(StemsplitError):
    """A command that needs an optional extra (torch for prepare/train/evaluate/export) that is
    not installed. The base install separates on ONNX Runtime; the message names the pip line."""

    def __init__(self, command: str, missing: str, extra: str = "train"):
        self.command, self.missing, self.extra = command, missing, extra
        super().__init__(f"stemsplit {command} needs {missing}, which is not installed: {install_extra(extra)}")


class CheckpointError(StemsplitError, RuntimeError):
    """A model file (a checkpoint or an exported .onnx) that is not usable; the message is meant for people."""
