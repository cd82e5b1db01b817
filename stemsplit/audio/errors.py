"""The audio errors: one line naming the file and the problem (``stemsplit.errors`` family)."""
from __future__ import annotations

from stemsplit.errors import StemsplitError


class AudioError(StemsplitError, RuntimeError):
    """An audio file that cannot be read or written; the message names the file and the problem."""


class DiskFullError(AudioError):
    """No space (or quota, or file-size limit) left where an output is written: nothing more can
    be written there, so a batch stops instead of failing every remaining file the same way."""
