"""Public pretrained models: the catalogue, the cache and verified downloads.

This package is the only part of stemsplit that opens network connections (standard library
only). ``catalogue`` reads the package data that lists the models, ``cache`` says where their
files live, ``fetch.ensure`` brings them there verified, and ``listing()`` describes each entry
for ``--list-models``. Nothing here imports torch or a format adapter.
"""
from __future__ import annotations

from pathlib import Path

from stemsplit.hub.cache import cache_root, is_cached, model_dir, paths
from stemsplit.hub.catalogue import CatalogueEntry, load, lookup
from stemsplit.hub.errors import CacheError, CatalogueError, ChecksumError, DownloadError, UnknownModelError
from stemsplit.hub.fetch import FetchEvent, ensure


def _score_text(entry: CatalogueEntry) -> str:
    s = entry.published_score
    if s is None:
        return "none published"
    if s.mean is None:
        return f"published: {s.metric}, {s.dataset}"
    return f"{s.mean:.2f} dB (published; {s.metric}; {s.dataset})"


def listing(root: str | Path | None = None) -> list[dict]:
    """One row per catalogue entry, for ``--list-models``: name, title, format, licence (+ URL and
    note), download size in MB, whether it is cached, and its PUBLISHED score with its source."""
    rows = []
    for entry in load().values():
        s = entry.published_score
        rows.append({
            "name": entry.name,
            "title": entry.title,
            "format": entry.format,
            "stems": list(entry.stems),
            "licence": entry.licence.name,
            "licence_url": entry.licence.url,
            "licence_note": entry.licence.note,
            "download_mb": round(entry.download_bytes / 1e6, 1),
            "cached": is_cached(entry, root),
            "published_score": _score_text(entry),
            "published_mean_db": None if s is None else s.mean,
            "published_per_stem_db": {} if s is None else dict(s.per_stem),
            "score_source": "" if s is None else f"{s.citation} <{s.url}>",
        })
    return rows


__all__ = ["CacheError", "CatalogueEntry", "CatalogueError", "ChecksumError", "DownloadError", "FetchEvent",
           "UnknownModelError", "cache_root", "ensure", "is_cached", "listing", "load", "lookup", "model_dir",
           "paths"]
