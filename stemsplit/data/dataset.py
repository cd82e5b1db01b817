"""What training and evaluation read: random excerpts for training, whole tracks for evaluation.

``ExcerptDataset`` draws each excerpt from its own random generator seeded by
(seed, epoch, index), so excerpt ``i`` of epoch ``e`` is the same in every run and in every
DataLoader worker. Tracks are drawn in proportion to their length, so every second of audio is
equally likely, unless ``weights`` gives each dataset its share of the draws (within a dataset,
still by length). The audio comes straight from the prepared cache's memory maps: nothing is
decoded while training.

Augmentations (``AugmentConfig``), applied in this order:

- ``random_mix``: each stem comes from its own random track and offset (the standard MUSDB
  cross-track remix); otherwise all stems share one track and offset.
- ``drop_silent``: a draw quieter than ``silence_db`` (RMS, dBFS) is redrawn, up to 10 times:
  each stem's draw under ``random_mix``, the whole excerpt's mixture otherwise.
- ``gain_db``, ``channel_swap``, ``pitch_shift_semitones``, ``time_stretch``, ``stem_dropout``: see
  ``augment.py``.

The mixture is always the sum of the augmented stems.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from stemsplit.config import AugmentConfig
from stemsplit.data.augment import draw_dropout, draw_gains, draw_swaps, draw_warp
from stemsplit.data.cache import MIXTURE, DataError, PreparedDataset

_SILENT_RETRIES = 10


class ExcerptDataset(Dataset):
    """``dataset[i] -> (mixture (channels, L), sources (stems, channels, L))`` float32 tensors."""

    def __init__(self, datasets: list[PreparedDataset], split: str, stems: list[str],
                 excerpt_frames: int, samples_per_epoch: int, augment: AugmentConfig | None,
                 seed: int, weights: list[float] | None = None, primary_extra_splits: tuple[str, ...] = ()):
        if not datasets:
            raise DataError("no prepared dataset was given to read excerpts from")
        if excerpt_frames <= 0 or samples_per_epoch <= 0:
            raise DataError(f"excerpt length ({excerpt_frames}) and samples per epoch "
                            f"({samples_per_epoch}) must be positive")
        first = datasets[0]
        for ds in datasets:
            if ds.sample_rate != first.sample_rate or ds.channels != first.channels:
                raise DataError(f"{ds.root}: {ds.sample_rate} Hz / {ds.channels} channels differs from "
                                f"{first.root} ({first.sample_rate} Hz / {first.channels} channels); "
                                "prepare both at one sample rate")
            missing = [s for s in stems if s not in ds.stems]
            if missing:
                raise DataError(f"{ds.root}: has no stem {missing[0]!r}; its stems are: {', '.join(ds.stems)}")
        self.datasets = list(datasets)
        self.split = split
        self.stems = list(stems)
        self.excerpt_frames = int(excerpt_frames)
        self.samples_per_epoch = int(samples_per_epoch)
        self.augment = augment
        # each stem's dropout chance, one for all or one each (stem_dropout_per_stem)
        self._dropout: float | np.ndarray = 0.0 if augment is None else (
            np.asarray(augment.stem_dropout_per_stem, dtype=np.float64) if augment.stem_dropout_per_stem
            else augment.stem_dropout)
        self.seed = int(seed)
        self.epoch = 0
        self.sample_rate = first.sample_rate
        self.channels = first.channels
        # (dataset index, track name) per track, drawn in proportion to length
        self.items: list[tuple[int, str]] = []
        lengths = []
        # primary_extra_splits: more splits of the first dataset to draw from (a final fit on
        # train+valid), never of the others, whose valid splits are out-of-domain checks
        for d, ds in enumerate(self.datasets):
            for part in (split, *primary_extra_splits) if d == 0 else (split,):
                for name in ds.tracks(part):
                    self.items.append((d, name))
                    lengths.append(ds.track_length(name))
        if not self.items:
            raise DataError(f"split {split!r} holds no tracks in {', '.join(str(d.root) for d in datasets)}")
        self._cumulative = np.cumsum(self._draw_weights(lengths, weights))
        self._lengths = lengths

    def _draw_weights(self, lengths: list[int], weights: list[float] | None) -> np.ndarray:
        """(tracks,) draw weights: the track lengths, rescaled so dataset d gets share weights[d]."""
        out = np.asarray(lengths, dtype=np.float64)
        if not weights:
            return out
        if len(weights) != len(self.datasets):
            raise DataError(f"data.weights: {len(weights)} weight(s) for {len(self.datasets)} dataset(s)")
        owner = np.asarray([d for d, _ in self.items])
        for d, w in enumerate(weights):
            mine = owner == d
            total = out[mine].sum()
            if total > 0:
                out[mine] *= w / total
        if out.sum() <= 0:
            raise DataError(f"data.weights {weights}: every dataset with {self.split!r} tracks has weight 0")
        return out

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch's excerpts. (With persistent DataLoader workers, call before the iterator
        is created: workers hold their own copy of the dataset.)"""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed % (1 << 63), self.epoch, int(index)])

    def _draw_position(self, rng: np.random.Generator, frames: int) -> tuple[int, int]:
        item = int(np.searchsorted(self._cumulative, rng.random() * self._cumulative[-1], side="right"))
        item = min(item, len(self.items) - 1)
        start = int(rng.integers(0, max(self._lengths[item] - frames, 0) + 1))
        return item, start

    def _draw_spans(self, rng: np.random.Generator, frames: int) -> list[tuple[int, int]]:
        """(track item, start) for each stem, redrawing silent draws when asked to."""
        aug = self.augment
        tries = _SILENT_RETRIES if aug is not None and aug.drop_silent else 1
        if aug is not None and aug.random_mix:
            spans = []
            for stem in self.stems:
                for _ in range(tries):
                    item, start = self._draw_position(rng, frames)
                    if tries == 1 or self._level(item, stem, start, frames) >= aug.silence_db:
                        break
                spans.append((item, start))
            return spans
        for _ in range(tries):
            item, start = self._draw_position(rng, frames)
            if tries == 1 or self._level(item, MIXTURE, start, frames) >= aug.silence_db:
                break
        return [(item, start)] * len(self.stems)

    def _level(self, item: int, part: str, start: int, frames: int) -> float:
        d, name = self.items[item]
        return self.datasets[d].level_db(name, part, start, frames)

    def _draw(self, index: int):
        """Everything random about excerpt ``index``: (warp, frames to read, spans, gains, swaps)."""
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = self._rng(index)
        aug = self.augment
        warp = draw_warp(aug, rng)
        frames = warp.input_frames(self.excerpt_frames)
        spans = self._draw_spans(rng, frames)
        gains = draw_gains(len(self.stems), aug.gain_db if aug else 0.0, rng)
        swaps = draw_swaps(len(self.stems), self.channels, bool(aug and aug.channel_swap), rng)
        gains = draw_dropout(gains, self._dropout, rng)
        return warp, frames, spans, gains, swaps

    def _fill(self, index: int, sources: np.ndarray, mixture: np.ndarray) -> None:
        """Write excerpt ``index`` into sources (stems, channels, L) and mixture (channels, L)."""
        warp, frames, spans, gains, swaps = self._draw(index)
        raw = sources if warp.identity else np.empty((len(self.stems), self.channels, frames), dtype=np.float32)
        for s, (stem, (item, start)) in enumerate(zip(self.stems, spans)):
            d, name = self.items[item]
            self.datasets[d].read(name, stem, start, frames, float(gains[s]), bool(swaps[s]), out=raw[s])
        if not warp.identity:
            sources[:] = warp.apply(raw, self.excerpt_frames)
        np.sum(sources, axis=0, out=mixture)

    def _fill_raw(self, index: int, stored: np.ndarray) -> np.ndarray:
        """Stored int16 samples of excerpt ``index`` into stored (stems, channels, L); returns the
        (stems,) float scales (cache scale x gain). Only without pitch/tempo warping."""
        warp, frames, spans, gains, swaps = self._draw(index)
        scales = np.empty(len(self.stems), dtype=np.float32)
        for s, (stem, (item, start)) in enumerate(zip(self.stems, spans)):
            d, name = self.items[item]
            scales[s] = self.datasets[d].read_raw(name, stem, start, stored[s], bool(swaps[s])) * gains[s]
        return scales

    @property
    def raw_transport(self) -> bool:
        """Whether batches can travel from workers as int16 (a quarter of the bytes of float32)."""
        aug = self.augment
        warped = aug is not None and (aug.pitch_shift_semitones > 0 or aug.time_stretch > 0)
        return not warped and all(ds.meta.get("dtype") == "int16" for ds in self.datasets)

    def __getitem__(self, index):
        """``dataset[i] -> (mixture (C, L), sources (S, C, L))``; a list of indices gives a batch
        ``(mixture (B, C, L), sources (B, S, C, L))``."""
        if isinstance(index, (list, tuple, np.ndarray, torch.Tensor)):
            indices = [int(i) for i in index]
            sources = np.empty((len(indices), len(self.stems), self.channels, self.excerpt_frames), np.float32)
            mixture = np.empty((len(indices), self.channels, self.excerpt_frames), np.float32)
            for b, i in enumerate(indices):
                self._fill(i, sources[b], mixture[b])
            return torch.from_numpy(mixture), torch.from_numpy(sources)
        sources = np.empty((len(self.stems), self.channels, self.excerpt_frames), dtype=np.float32)
        mixture = np.empty((self.channels, self.excerpt_frames), dtype=np.float32)
        self._fill(int(index), sources, mixture)
        return torch.from_numpy(mixture), torch.from_numpy(sources)

    def loader(self, batch_size: int, num_workers: int = 0, drop_last: bool = True, device=None):
        """Batches ``(mixture (B, C, L), sources (B, S, C, L))`` on ``device`` (default CPU): the
        same excerpts in the same order as ``DataLoader(self, batch_size)``, faster; see
        ``stemsplit.data.loader``."""
        from stemsplit.data.loader import ExcerptLoader

        return ExcerptLoader(self, batch_size, num_workers, drop_last, device)


def iter_full_tracks(dataset: PreparedDataset, split: str,
                     stems: list[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(name, mixture (channels, T), sources (stems, channels, T))`` float32 per track.

    The mixture is the stored one (for MUSDB the original mix, not quite the sum of the stems).
    """
    missing = [s for s in stems if s not in dataset.stems]
    if missing:
        raise DataError(f"{dataset.root}: has no stem {missing[0]!r}; its stems are: {', '.join(dataset.stems)}")
    for name in dataset.tracks(split):
        length = dataset.track_length(name)
        mixture = dataset.read(name, MIXTURE, 0, length)
        sources = np.empty((len(stems), dataset.channels, length), dtype=np.float32)
        for s, stem in enumerate(stems):
            dataset.read(name, stem, 0, length, out=sources[s])
        yield name, mixture, sources
