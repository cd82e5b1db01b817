"""Objects whose pickle runs code when it is loaded: what a malicious model file holds.

``Payload(func, *args)`` unpickles as ``func(*args)``; ``touch(marker)`` and ``python(code)`` are
the two the format tests put into weights files (a shell command, Python source), each leaving a
file behind if it ever runs.
"""
from __future__ import annotations

import builtins
import os
from pathlib import Path


class Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def touch(marker: Path | str) -> Payload:
    """os.system("touch MARKER") when unpickled."""
    return Payload(os.system, f"touch {marker}")


def python(code: str) -> Payload:
    """exec(code) when unpickled."""
    return Payload(builtins.exec, code)
