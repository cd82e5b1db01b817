"""Reading a prepared dataset folder (the layout is described in ``stemsplit.data.cache``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from stemsplit.atomic import mkstemp_beside
from stemsplit.data.cache_format import FORMAT, MIXTURE, DataError, digest
from stemsplit.data.stats import compute_magnitude_stats


class PreparedDataset:
    """Read a prepared dataset folder. Arrays are (channels, time) float32."""

    def __init__(self, root: Path, meta: dict | None = None):
        self.root = Path(root)
        if meta is None:
            meta = self._read_meta()
        self.meta = meta
        self.sample_rate: int = int(meta["sample_rate"])
        self.stems: list[str] = list(meta["stems"])
        self.channels: int = int(meta["channels"])
        self.splits: dict[str, list[str]] = {k: list(v) for k, v in meta["splits"].items()}
        self._tracks: dict[str, dict] = meta["tracks"]
        self._open: dict[tuple[str, str], np.ndarray] = {}

    def _read_meta(self) -> dict:
        path = self.root / "dataset.json"
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found; create it with 'stemsplit prepare'")
        if not path.is_file():
            raise DataError(f"{self.root}: not a prepared dataset (no dataset.json); "
                            "create it with 'stemsplit prepare'")
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable ({exc}); prepare the dataset again") from None
        needed = ("format", "sample_rate", "channels", "stems", "splits", "tracks")
        if not isinstance(meta, dict) or any(k not in meta for k in needed):
            raise DataError(f"{path}: not a stemsplit dataset description; prepare the dataset again")
        if meta["format"] != FORMAT:
            raise DataError(f"{path}: cache format {meta['format']} is not {FORMAT}; prepare the dataset again")
        return meta

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"PreparedDataset({str(self.root)!r}, {self.sample_rate} Hz, stems={self.stems}, {counts})"

    def __getstate__(self) -> dict:  # DataLoader workers reopen their own memmaps
        state = self.__dict__.copy()
        state["_open"] = {}
        return state

    def tracks(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DataError(f"{self.root}: no split {split!r}; the splits are: {', '.join(self.splits)}")
        return list(self.splits[split])

    def _record(self, name: str) -> dict:
        try:
            return self._tracks[name]
        except KeyError:
            raise DataError(f"{self.root}: no track named {name!r}") from None

    def track_length(self, name: str) -> int:
        return int(self._record(name)["length"])

    def array(self, name: str, part: str) -> np.ndarray:
        """The stored (channels, time) array of one part ("mixture" or a stem), memory-mapped.
        Multiply by ``scale(name, part)`` to get float audio."""
        key = (name, part)
        if key not in self._open:
            if part != MIXTURE and part not in self.stems:
                raise DataError(f"{self.root}: no stem {part!r}; the stems are: {', '.join(self.stems)}")
            path = self.root / self._record(name)["dir"] / f"{part}.npy"
            try:
                self._open[key] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot read the cached audio ({exc}); prepare the dataset again") from None
        return self._open[key]

    def scale(self, name: str, part: str) -> float:
        return float(self._record(name).get("scales", {}).get(part, 1.0))

    def read(self, name: str, part: str, start: int, length: int, gain: float = 1.0,
             swap_channels: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """(channels, length) float32 from ``start``, times ``gain``, channels reversed when
        ``swap_channels``; zero-padded past either end. Decoding, gain and swap are one pass."""
        stored = self.array(name, part)
        if out is None:
            out = np.empty((stored.shape[0], length), dtype=np.float32)
        lo, hi = max(start, 0), min(start + length, stored.shape[1])
        if hi <= lo:
            out[:] = 0
            return out
        out[:, : lo - start] = 0
        out[:, hi - start:] = 0
        src = stored[::-1, lo:hi] if swap_channels else stored[:, lo:hi]
        np.multiply(src, np.float32(self.scale(name, part) * gain), out=out[:, lo - start:hi - start],
                    casting="unsafe")
        return out

    def read_raw(self, name: str, part: str, start: int, out: np.ndarray, swap_channels: bool = False) -> float:
        """Copy the stored samples of a span into ``out`` (channels, length), zero-padded, with no
        conversion; returns the scale that turns them into float audio."""
        stored = self.array(name, part)
        length = out.shape[-1]
        lo, hi = max(start, 0), min(start + length, stored.shape[1])
        out[:, : max(0, min(lo - start, length))] = 0
        out[:, max(0, hi - start):] = 0
        if hi > lo:
            out[:, lo - start:hi - start] = stored[::-1, lo:hi] if swap_channels else stored[:, lo:hi]
        return self.scale(name, part)

    def level_db(self, name: str, part: str, start: int, length: int) -> float:
        """Approximate RMS level (dBFS) of a span, from every 16th sample: cheap silence tests."""
        stored = self.array(name, part)
        piece = np.asarray(stored[:, max(start, 0):max(start + length, 0):16], dtype=np.float32)
        if piece.size == 0:
            return -200.0
        power = float(np.vdot(piece, piece)) / piece.size * self.scale(name, part) ** 2
        return 10.0 * np.log10(power + 1e-20)

    def load_track(self, name: str) -> dict[str, np.ndarray]:
        """{"mixture": ..., stem: ...} (channels, time) float32; memory-mapped when stored as float32."""
        out = {}
        for part in (MIXTURE, *self.stems):
            stored = self.array(name, part)
            if stored.dtype == np.float32:
                out[part] = stored
            else:
                out[part] = self.read(name, part, 0, stored.shape[1])
        return out

    def magnitude_stats(self, n_fft: int, hop_length: int,
                        must_cache: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin (mean, std) of log1p(|STFT|) of the train mixtures, each (n_fft//2+1,) float32.

        Computed once and kept in ``DIR/stats``; when that folder is read-only the figures are
        computed again for each call (``must_cache`` makes that an OSError instead).
        """
        key = self.meta.get("stats_key") or digest("|".join(r["dir"] for r in self._tracks.values()))
        path = self.root / "stats" / f"{key}_{n_fft}_{hop_length}.npz"
        if path.is_file():
            try:
                with np.load(path) as data:
                    return data["mean"].astype(np.float32), data["std"].astype(np.float32)
            except (OSError, ValueError, KeyError):
                pass  # damaged: compute again below
        names = self.meta.get("stats_tracks") or self.splits.get("train") or list(self._tracks)
        mixtures = (self.read(n, MIXTURE, 0, self.track_length(n)) for n in names)
        mean, std = compute_magnitude_stats(mixtures, n_fft, hop_length)
        tmp = None
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = mkstemp_beside(path, suffix=".npz")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, mean=mean, std=std)
            os.replace(tmp, path)
        except OSError:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if must_cache:
                raise
        return mean, std
