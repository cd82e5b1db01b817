"""A fast batch loader for ``ExcerptDataset``.

``DataLoader(dataset, batch_size=16)`` works, but a batch of sixteen 6-second stereo excerpts
of four stems is 170 MB of float32: the default path builds every excerpt, stacks them into
a fresh shared-memory tensor and maps that into the training process, and on a small
machine moving those bytes costs more than reading the audio. ``ExcerptLoader`` gives the
same excerpts in the same order with less traffic:

- each batch is built in place (no per-excerpt tensors to stack);
- with workers, or when the batches go to a GPU, an int16 cache travels as int16 plus one
  scale per stem and excerpt (a fifth of the bytes: no mixture, half the sample size); the
  receiving side (the GPU, or the training process) turns it into float32 and sums the
  mixture. With pitch/tempo augmentation or a float32 cache, float32 batches travel instead.

On a 2-core machine the float32 batch itself is the cost (it must be written once in the
training process's memory), so 0 workers is usually fastest there; see scripts/bench_data.py.

Every index is already a random draw (seeded by seed, epoch and index), so by default batches
are consecutive index ranges and there is nothing to shuffle. Training passes its own index
sampler (``training.sampler.ResumableSampler``: an epoch's permutation, split between DDP ranks,
resumable mid-epoch); this loader is the trainer's only data path.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler


class _RawBatches(Dataset):
    """What a worker returns for a list of indices: (int16 stored (B, S, C, L), scales (B, S))."""

    def __init__(self, excerpts):
        self.excerpts = excerpts

    def __len__(self) -> int:
        return len(self.excerpts)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        ex = self.excerpts
        stored = np.empty((len(indices), len(ex.stems), ex.channels, ex.excerpt_frames), dtype=np.int16)
        scales = np.empty((len(indices), len(ex.stems)), dtype=np.float32)
        for b, index in enumerate(indices):
            scales[b] = ex._fill_raw(int(index), stored[b])
        return torch.from_numpy(stored), torch.from_numpy(scales)


def decode_raw(stored: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int16 (B, S, C, L), scales (B, S)) -> (mixture (B, C, L), sources (B, S, C, L)) float32,
    on the tensors' device."""
    if stored.device.type != "cpu":
        sources = stored.float() * scales[:, :, None, None]
        return sources.sum(1), sources
    raw = stored.numpy()
    # numpy allocations of this size ask the kernel for huge pages: far fewer page faults
    sources = np.empty(raw.shape, dtype=np.float32)
    for b, row in enumerate(scales.numpy()):
        for s, scale in enumerate(row):  # a scalar factor keeps numpy on its fast cast loop
            np.multiply(raw[b, s], scale, out=sources[b, s], casting="unsafe")
    mixture = np.sum(sources, axis=1)
    return torch.from_numpy(mixture), torch.from_numpy(sources)


class ExcerptLoader:
    """Iterate batches ``(mixture (B, C, L), sources (B, S, C, L))`` of an ``ExcerptDataset``.

    ``device``: where the batches are wanted. For a GPU, int16 batches are copied there
    (a fifth of the bytes) and turned into float32 on the GPU, which leaves the CPU little
    to do per batch; otherwise batches arrive on the CPU.
    """

    def __init__(self, excerpts, batch_size: int, num_workers: int = 0, drop_last: bool = True,
                 device: str | torch.device | None = None, *, sampler: Sampler[int] | None = None,
                 worker_init_fn: Callable[[int], None] | None = None, seed: int = 0):
        self.excerpts = excerpts
        self.device = torch.device(device) if device is not None else None
        on_gpu = self.device is not None and self.device.type != "cpu"
        self.raw = excerpts.raw_transport and (num_workers > 0 or on_gpu)
        indices = sampler if sampler is not None else SequentialSampler(range(len(excerpts)))
        # A private generator: starting an iterator must not draw from the global torch RNG, or a
        # resumed run (which starts one mid-epoch) would diverge from an uninterrupted one.
        self.generator = torch.Generator().manual_seed(seed)
        self._loader = DataLoader(_RawBatches(excerpts) if self.raw else excerpts, batch_size=None,
                                  sampler=BatchSampler(indices, batch_size, drop_last), num_workers=num_workers,
                                  persistent_workers=False, pin_memory=on_gpu, worker_init_fn=worker_init_fn,
                                  generator=self.generator, prefetch_factor=4 if num_workers else None)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for first, second in self._loader:
            if self.device is not None:
                first = first.to(self.device, non_blocking=True)
                second = second.to(self.device, non_blocking=True)
            yield decode_raw(first, second) if self.raw else (first, second)
