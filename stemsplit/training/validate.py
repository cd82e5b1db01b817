"""Validation: the training loss on fixed excerpts, and global SDR on whole tracks.

Both run on the valid split. The SDR separates each full track with the real engine (the
numpy ``Engine`` around a ``TorchRunner``), exactly as ``stemsplit separate --runtime torch``
would, so a checkpoint's validation score is the score its users get. Under DDP each rank takes every N-th excerpt and
track, and the sums are all-reduced, so every rank sees the same result.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from stemsplit.config import Config
from stemsplit.data.cache import PreparedDataset
from stemsplit.metrics import global_sdr
from stemsplit.separation.engine import Engine
from stemsplit.separation.torch_runner import TorchRunner
from stemsplit.settings import EngineSettings
from stemsplit.training.distributed import DistContext, all_reduce_sum
from stemsplit.training.losses import SeparationLoss, TrainForward


@dataclass
class ValResult:
    loss: float
    sdr: dict[str, float]  # mean over tracks of the per-track global SDR (dB)
    accuracy: dict[str, float] = field(default_factory=dict)  # mask models only
    tracks: int = 0
    seconds: float = 0.0

    @property
    def sdr_mean(self) -> float:
        values = list(self.sdr.values())
        return float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else -math.inf

    def line(self, step: int, improved: bool, best_score: float, best_step: int) -> str:
        """The log line of this validation, as the training loop and the fitter print it."""
        sdr = "  ".join(f"{s} {v:.2f}" for s, v in self.sdr.items())
        acc = "  acc " + " ".join(f"{s} {100 * v:.1f}%" for s, v in self.accuracy.items()) if self.accuracy else ""
        note = " (best)" if improved else f" (best {best_score:.2f} dB at step {best_step})"
        return (f"validation at step {step}: loss {self.loss:.4g}  SDR {sdr}  "
                f"mean {self.sdr_mean:.2f} dB{note}{acc}  [{self.seconds:.1f}s]")

    def scores(self) -> dict:
        """Plain-typed figures for checkpoint metadata."""
        out = {"val_loss": self.loss, "sdr": dict(self.sdr), "sdr_mean": self.sdr_mean,
               "val_tracks": self.tracks}
        if self.accuracy:
            out["mask_accuracy"] = dict(self.accuracy)
        return out


def validation_tracks(dataset: PreparedDataset, limit: int) -> list[str]:
    names = dataset.tracks("valid")
    return names[:limit] if limit > 0 else names


@torch.no_grad()
def _excerpt_loss(model: nn.Module, loss_fn: SeparationLoss, excerpts, batch_size: int,
                  ctx: DistContext, stems: int) -> tuple[torch.Tensor, int]:
    """Sums (loss * n, accuracy * n per stem) over this rank's excerpts, and n."""
    net = TrainForward(model, loss_fn.wants_logits)
    sums = torch.zeros(1 + stems, dtype=torch.float64)
    mine = list(range(ctx.rank, len(excerpts), ctx.world_size))
    for start in range(0, len(mine), batch_size):
        items = [excerpts[i] for i in mine[start:start + batch_size]]
        mixture = torch.stack([m for m, _ in items]).to(ctx.device)
        sources = torch.stack([s for _, s in items]).to(ctx.device)
        out = loss_fn(net, mixture, sources)
        n = len(items)
        sums[0] += out.loss.item() * n
        if out.mask_accuracy is not None:
            sums[1:] += out.mask_accuracy.double().cpu() * n
    return sums, len(mine)


def validate(model: nn.Module, cfg: Config, loss_fn: SeparationLoss, excerpts,
             dataset: PreparedDataset, ctx: DistContext) -> ValResult:
    """Evaluate ``model`` (the plain module, not DDP); it is left in train mode afterwards."""
    t0 = time.perf_counter()
    stems = list(cfg.stems)
    model.eval()
    try:
        sums, count = _excerpt_loss(model, loss_fn, excerpts, cfg.train.batch_size, ctx, len(stems))
        separator = Engine(TorchRunner(model, cfg, ctx.device), EngineSettings(device=str(ctx.device)))
        names = validation_tracks(dataset, cfg.train.val_tracks)
        sdr_sums = torch.zeros(len(stems), dtype=torch.float64)
        for name in names[ctx.rank::ctx.world_size]:
            track = dataset.load_track(name)
            estimate = separator.separate(track["mixture"])
            for i, stem in enumerate(stems):
                sdr_sums[i] += global_sdr(np.asarray(track[stem]), estimate[i])
    finally:
        model.train()
    totals = all_reduce_sum(torch.cat([sums, torch.tensor([float(count)]), sdr_sums]), ctx)
    n = max(1.0, float(totals[1 + len(stems)]))
    loss = float(totals[0]) / n
    accuracy = {}
    if loss_fn.reports_accuracy:
        accuracy = {s: float(totals[1 + i]) / n for i, s in enumerate(stems)}
    sdr_totals = totals[2 + len(stems):]
    sdr = {s: float(sdr_totals[i]) / max(1, len(names)) for i, s in enumerate(stems)} if names else {}
    return ValResult(loss=loss, sdr=sdr, accuracy=accuracy, tracks=len(names),
                     seconds=time.perf_counter() - t0)
