"""Data order: a DistributedSampler that can start part-way through an epoch.

The order of epoch ``e`` is a permutation drawn from ``seed + e`` (the same on every rank),
dealt out round-robin, so with N ranks and batch B the union of the ranks' k-th batches is
exactly the k-th batch of a single process with batch N*B. Resuming skips the batches the
interrupted run had already consumed, so the data order continues bit for bit.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, batch_size: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.batch_size = batch_size
        self.skip_batches = 0

    def set_position(self, epoch: int, batches_done: int) -> None:
        self.set_epoch(epoch)
        self.skip_batches = batches_done

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip_batches * self.batch_size:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip_batches * self.batch_size)


def quiet_worker(_worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM: the main process decides when to stop.

    A Ctrl-C reaches the whole process group; without this a worker would die mid-batch and
    the main process would fail instead of saving a checkpoint.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
