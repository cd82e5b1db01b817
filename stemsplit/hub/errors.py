"""The errors of the model hub: each one line for people, exit code 2 (``StemsplitError``)."""
from __future__ import annotations

from stemsplit.errors import StemsplitError

AIR_GAP_HINT = ("pull it on a machine with a network: stemsplit models pull {name} --to DIR, then copy DIR here "
                "and set STEMSPLIT_CACHE=DIR")


class CatalogueError(StemsplitError, ValueError):
    """A catalogue file (shipped, or named by STEMSPLIT_CATALOGUE) that does not follow the schema."""


class UnknownModelError(CatalogueError):
    """A model name that no catalogue entry has."""


class CacheError(StemsplitError, OSError):
    """A cache folder that stemsplit cannot create or write into."""


class DownloadError(StemsplitError, OSError):
    """Every source of a model file failed: offline, refused, HTTP errors, or a bad checksum."""


class ChecksumError(DownloadError):
    """A downloaded file whose SHA-256 (or size) is not the one it must have; nothing of it was kept."""
