"""The prepared cache's constants and errors, shared by its writer (``cache``) and reader (``reader``)."""
from __future__ import annotations

import hashlib

from stemsplit.errors import StemsplitError

FORMAT = 1
STATS_PREPARED = ((1024, 512), (4096, 1024))  # computed at prepare time; others lazily
DTYPES = ("int16", "float32")  # int16: a scale per part maps its peak to 32767 (96 dB below the peak)
MIXTURE = "mixture"


class DataError(StemsplitError, RuntimeError):
    """A dataset that cannot be prepared or read; the message is one line meant for people."""


class CacheWriteError(DataError):
    """Writing to the cache failed (disk full, permissions): the whole run stops, the old cache stays."""


def digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]
