"""Datasets: preparing MUSDB18 / folder / generated corpora into a cache, and reading it back.

- ``cache``: the prepared-dataset format (``CacheWriter``, ``PreparedDataset``, ``DataError``)
- ``dataset``: random training excerpts (``ExcerptDataset``) and whole tracks (``iter_full_tracks``)
- ``musdb``, ``folder``, ``synth``: the sources ``stemsplit prepare`` reads or generates
"""
from stemsplit.data.cache import CacheWriter, DataError, PreparedDataset

__all__ = ["CacheWriter", "DataError", "PreparedDataset"]
