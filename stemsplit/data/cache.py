"""The prepared-dataset cache: what ``stemsplit prepare`` writes and ``train``/``evaluate`` read.

Layout of a prepared dataset folder::

    DIR/dataset.json                      written last; describes everything below
    DIR/tracks/<name>-<key>/<part>.npy    (channels, time) int16 (or float32), one per stem
                                          plus "mixture"; read with np.load(mmap_mode="r")
    DIR/tracks/<name>-<key>/track.json    the entry's own record (name, split, length, hash,
                                          and per part the scale that turns int16 into float)
    DIR/stats/<statskey>_<n_fft>_<hop>.npz  per-bin mean/std of log1p(|STFT|) of the mixtures

``<key>`` hashes the source's content hash with the sample rate, stems and storage type, so an
entry is never overwritten in place: a changed source gets a new folder, and old folders are
removed only after the new ``dataset.json`` is in place. Each entry is written into a
temporary folder and renamed, so a killed run (or a full disk) leaves the previous cache whole
and every finished entry reusable by the next run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from stemsplit.atomic import write_json_atomic
from stemsplit.data.cache_format import DTYPES, FORMAT, MIXTURE, STATS_PREPARED, CacheWriteError, DataError, digest  # noqa: F401
from stemsplit.data.reader import PreparedDataset


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "track"



def _disk_error(root: Path, what: str, exc: OSError) -> CacheWriteError:
    return CacheWriteError(f"{root}: could not write {what} ({exc.strerror or exc}); the previously "
                     "prepared cache is unchanged: free some space or fix permissions and run again")


def _encode(audio: np.ndarray, dtype: str) -> tuple[np.ndarray, float]:
    """(stored array, scale) with ``audio ~= stored * scale``."""
    if dtype == "float32":
        return np.ascontiguousarray(audio, dtype=np.float32), 1.0
    peak = float(np.abs(audio).max())
    scale = peak / 32767.0 if peak > 0 else 1.0
    return np.round(audio / scale).astype(np.int16), scale


class CacheWriter:
    """Write a prepared dataset: ``has_track``/``add_track`` per track, then ``finalize()``."""

    def __init__(self, root: Path, sample_rate: int, stems: list[str], source: str,
                 dtype: str = "int16", settings: str = "", licence: str = ""):
        if dtype not in DTYPES:
            raise DataError(f"cache dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
        if not stems or len(set(stems)) != len(stems) or MIXTURE in stems:
            raise DataError(f"stems {stems}: need distinct stem names, none called {MIXTURE!r}")
        self.root = Path(root)
        self.sample_rate = int(sample_rate)
        self.stems = list(stems)
        self.source = source
        self.licence = licence  # the source's terms, carried into the metadata of models trained on it
        self.dtype = dtype
        self.settings = settings  # anything else that decides an entry's content (e.g. check options)
        self.channels: int | None = None
        self._entries: dict[str, dict] = {}
        try:
            (self.root / "tracks").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{self.root}: cannot create the dataset folder ({exc.strerror})") from None

    def _entry_dir(self, name: str, source_hash: str) -> Path:
        key = digest(f"{FORMAT}|{source_hash}|{self.sample_rate}|{','.join(self.stems)}|{self.dtype}|{self.settings}")
        return self.root / "tracks" / f"{_safe_name(name)}-{key}"

    def has_track(self, name: str, source_hash: str, split: str | None = None) -> bool:
        """True when an entry for this exact source content and these settings is on disk.

        The entry is then kept in the dataset being written (under ``split``, or the split it
        was prepared with), so a caller simply skips ``add_track`` for it.
        """
        if not source_hash:
            return False
        entry = self._entry_dir(name, source_hash)
        try:
            record = json.loads((entry / "track.json").read_text())
        except (OSError, ValueError):
            return False
        parts = [MIXTURE, *self.stems]
        if record.get("name") != name or not all((entry / f"{p}.npy").is_file() for p in parts):
            return False
        if self.channels is not None and record.get("channels") != self.channels:
            return False
        self.channels = record.get("channels")
        record["split"] = split or record.get("split") or "train"
        self._entries[name] = record
        return True

    def add_track(self, name: str, split: str, stems: dict[str, np.ndarray],
                  mixture: np.ndarray | None = None, source_hash: str = "", source: str = "") -> None:
        """Store one track atomically. Arrays are (channels, time) float; mixture defaults to the
        sum of the stems. Raises DataError for bad input or a failed write (nothing is left half done).
        """
        if not name or not split:
            raise DataError(f"track {name!r}: a track needs a name and a split")
        if name in self._entries:
            raise DataError(f"track {name!r}: added twice to {self.root}")
        missing = [s for s in self.stems if s not in stems]
        extra = [s for s in stems if s not in self.stems]
        if missing or extra:
            raise DataError(f"track {name!r}: stems {sorted(stems)} do not match the dataset's "
                            f"stems {self.stems} (missing {missing}, unexpected {extra})")
        arrays = {s: np.asarray(stems[s], dtype=np.float32) for s in self.stems}
        if mixture is not None:
            arrays[MIXTURE] = np.asarray(mixture, dtype=np.float32)
        shapes = {k: a.shape for k, a in arrays.items()}
        first = arrays[self.stems[0]].shape
        if any(len(s) != 2 for s in shapes.values()) or any(s != first for s in shapes.values()):
            raise DataError(f"track {name!r}: every part must be (channels, time) of one shape, got {shapes}")
        if first[1] == 0:
            raise DataError(f"track {name!r}: has no samples")
        if self.channels is not None and first[0] != self.channels:
            raise DataError(f"track {name!r}: has {first[0]} channels, the dataset has {self.channels}")
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise DataError(f"track {name!r}: contains NaN or Inf samples")
        if mixture is None:
            arrays[MIXTURE] = np.sum([arrays[s] for s in self.stems], axis=0, dtype=np.float32)

        final = self._entry_dir(name, source_hash or uuid.uuid4().hex)
        record = {"name": name, "split": split, "length": int(first[1]), "channels": int(first[0]),
                  "source": source, "source_hash": source_hash, "dir": f"tracks/{final.name}",
                  "dtype": self.dtype, "scales": {}}
        tmp = self.root / "tracks" / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            for part, audio in arrays.items():
                stored, record["scales"][part] = _encode(audio, self.dtype)
                np.save(tmp / f"{part}.npy", stored)
            (tmp / "track.json").write_text(json.dumps(record, indent=1))
            if final.exists():  # same source re-added: swap, never leave the name missing for long
                trash = final.with_name(f".tmp-old-{final.name}-{uuid.uuid4().hex[:8]}")
                os.replace(final, trash)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _disk_error(self.root, f"track {name!r}", exc) from None
        self.channels = int(first[0])
        self._entries[name] = record

    def finalize(self) -> Path:
        """Compute the magnitude statistics, write ``dataset.json`` last, drop stale entries."""
        if not self._entries:
            raise DataError(f"{self.root}: no tracks were prepared, so there is no dataset to write")
        splits: dict[str, list[str]] = {}
        for name, rec in sorted(self._entries.items()):
            splits.setdefault(rec["split"], []).append(name)
        stats_tracks = splits.get("train") or sorted(self._entries)
        stats_key = digest("|".join(self._entries[n]["dir"] for n in stats_tracks))
        meta = {"format": FORMAT, "sample_rate": self.sample_rate, "channels": self.channels,
                "stems": self.stems, "dtype": self.dtype, "source": self.source,
                "splits": splits, "stats_key": stats_key, "stats_tracks": stats_tracks,
                "tracks": {n: {k: v for k, v in rec.items() if k != "name"}
                           for n, rec in sorted(self._entries.items())}}
        if self.licence:
            meta["licence"] = self.licence
        try:
            (self.root / "stats").mkdir(exist_ok=True)
            reader = PreparedDataset(self.root, meta=meta)
            for n_fft, hop in STATS_PREPARED:
                reader.magnitude_stats(n_fft, hop, must_cache=True)
            write_json_atomic(self.root / "dataset.json", meta)
        except OSError as exc:
            raise _disk_error(self.root, "dataset.json", exc) from None
        self._remove_stale(meta)
        return self.root / "dataset.json"

    def _remove_stale(self, meta: dict) -> None:
        keep = {rec["dir"].split("/", 1)[1] for rec in meta["tracks"].values()}
        for entry in (self.root / "tracks").iterdir():
            if entry.name not in keep and entry.is_dir() and (
                    entry.name.startswith(".tmp-") or (entry / "track.json").exists()):
                shutil.rmtree(entry, ignore_errors=True)
        for stats in (self.root / "stats").glob("*.npz"):
            if not stats.name.startswith(meta["stats_key"] + "_"):
                stats.unlink(missing_ok=True)


__all__ = ["CacheWriter", "CacheWriteError", "DataError", "PreparedDataset", "MIXTURE", "FORMAT"]
