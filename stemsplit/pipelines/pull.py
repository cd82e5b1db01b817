"""`stemsplit models pull`: fetch public models into a cache folder ahead of time.

For air-gapped machines: pull on a machine with a network (``--to DIR``), copy DIR, and set
``STEMSPLIT_CACHE=DIR`` where the models run. One model that fails (an unknown name, a failed
download) does not stop the others; each outcome is reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stemsplit.errors import StemsplitError
from stemsplit.hub import cache, catalogue, fetch
from stemsplit.hub.http import NetSettings


@dataclass
class PullResult:
    name: str
    paths: dict[str, Path] = field(default_factory=dict)  # role -> file, when it worked
    error: StemsplitError | None = None
    already_cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths.values() if p.is_file())


def pull(names: list[str], to: Path | None = None, events: fetch.EventCallback | None = None,
         settings: NetSettings | None = None) -> list[PullResult]:
    """Pull each named model into ``to`` (default: the cache folder). A catalogue that cannot be
    read, or a cache folder that cannot be written, raises before anything is downloaded."""
    entries = catalogue.load()
    root = cache.cache_root(to)
    cache.writable_dir(root)
    results = []
    for name in dict.fromkeys(names):  # a name given twice is pulled once
        result = PullResult(name)
        try:
            entry = catalogue.lookup(name, entries)
            result.already_cached = cache.is_cached(entry, root)
            result.paths = fetch.ensure(entry, events=events, root=root, settings=settings)
        except StemsplitError as exc:
            result.error = exc
        results.append(result)
    return results
