"""Building a run's parts: seeded model, optimizer, AMP, data loaders, resume state.

Kept apart from the loop so that the loop reads as the order of events of one step.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stemsplit.config import Config, ConfigError
from stemsplit.data.cache import DataError, PreparedDataset
from stemsplit.data.dataset import ExcerptDataset
from stemsplit.data.loader import ExcerptLoader
from stemsplit.models import build_model
from stemsplit.training.distributed import DistContext, wrap_model
from stemsplit.training.losses import SeparationLoss, TrainForward
from stemsplit.training.sampler import ResumableSampler, quiet_worker
from stemsplit.training.validate import validation_tracks

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def excerpt_samples(cfg: Config) -> int:
    return int(round(cfg.data.excerpt_seconds * cfg.audio.sample_rate))


@dataclass
class ModelParts:
    model: nn.Module  # the plain module: saved, validated
    net: nn.Module  # what a training step calls: TrainForward, maybe under DDP / torch.compile
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], contextlib.AbstractContextManager]


def build_model_parts(cfg: Config, loss_fn: SeparationLoss, ctx: DistContext,
                      dataset: PreparedDataset, state_dict: dict | None,
                      say: Callable[[str], None]) -> ModelParts:
    """A seeded model (input statistics from ``dataset`` unless ``state_dict`` is given), moved
    to the device and wrapped for the training step."""
    seed_everything(cfg.train.seed)
    model = build_model(cfg)
    if state_dict is not None:
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()})
        except RuntimeError as exc:
            raise ConfigError(f"the starting weights (train.init_from or --resume) do not fit this config's model: "
                              f"{str(exc).splitlines()[0][:160]}; use the same model sizes") from None
    elif ctx.is_main and model.spectral:  # other ranks receive rank 0's weights when DDP is built
        mean, std = dataset.magnitude_stats(cfg.stft.n_fft, cfg.stft.hop_length)
        model.set_input_stats(torch.from_numpy(mean), torch.from_numpy(std))
    model.to(ctx.device)
    # after the identical initialisation, each rank gets its own dropout stream
    torch.manual_seed(cfg.train.seed + ctx.rank)

    cuda = ctx.device.type == "cuda"
    if cfg.train.amp != "none" and not cuda:
        say(f"train.amp={cfg.train.amp} is used on CUDA only; training in float32 on {ctx.device}")
    if cfg.train.compile and not cuda:
        say(f"train.compile is used on CUDA only; running eagerly on {ctx.device}")
    if cuda:
        torch.backends.cudnn.benchmark = True
    net = wrap_model(TrainForward(model, loss_fn.wants_logits), ctx)
    if cfg.train.compile and cuda:
        net = torch.compile(net)
    use_amp = cuda and cfg.train.amp != "none"
    amp_dtype = AMP_DTYPES.get(cfg.train.amp)

    def autocast() -> contextlib.AbstractContextManager:
        if use_amp:
            return torch.autocast("cuda", dtype=amp_dtype)
        return contextlib.nullcontext()

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                  fused=cuda or None)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cfg.train.amp == "fp16")
    return ModelParts(model=model, net=net, optimizer=optimizer, scaler=scaler, autocast=autocast)


@dataclass
class DataParts:
    train_set: ExcerptDataset
    sampler: ResumableSampler
    loader: ExcerptLoader
    val_set: ExcerptDataset
    steps_per_epoch: int


def build_data_parts(cfg: Config, datasets: list[PreparedDataset], ctx: DistContext) -> DataParts:
    primary = datasets[0]
    for ds in datasets:
        if ds.sample_rate != cfg.audio.sample_rate:
            raise ConfigError(f"audio.sample_rate: the config says {cfg.audio.sample_rate} Hz but "
                              f"{ds.root} is prepared at {ds.sample_rate} Hz; prepare it at the model's rate")
        if ds.channels != cfg.audio.channels:
            raise ConfigError(f"audio.channels: the config says {cfg.audio.channels} but {ds.root} "
                              f"has {ds.channels}; set --set audio.channels={ds.channels}")
    if not validation_tracks(primary, cfg.train.val_tracks):
        raise DataError(f"{primary.root}: the 'valid' split holds no tracks; prepare the dataset with "
                        "a validation split")
    frames = excerpt_samples(cfg)
    b = cfg.train.batch_size
    train_set = ExcerptDataset(datasets, "train", cfg.stems, frames, cfg.data.samples_per_epoch,
                               cfg.data.augment, cfg.train.seed, weights=cfg.data.weights or None,
                               primary_extra_splits=("valid",) if cfg.data.train_on_valid else ())
    sampler = ResumableSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank,
                               seed=cfg.train.seed, batch_size=b)
    steps_per_epoch = sampler.num_samples // b
    if steps_per_epoch == 0:
        raise ConfigError(f"data.samples_per_epoch: {cfg.data.samples_per_epoch} excerpts are fewer than "
                          f"one batch of train.batch_size={b} on each of {ctx.world_size} process(es)")
    workers = cfg.data.num_workers
    loader = ExcerptLoader(train_set, b, workers, drop_last=True, device=ctx.device, sampler=sampler,
                           worker_init_fn=quiet_worker if workers else None, seed=cfg.train.seed)
    val_set = ExcerptDataset([primary], "valid", cfg.stems, frames, cfg.train.val_excerpts, None,
                             cfg.train.seed)
    return DataParts(train_set=train_set, sampler=sampler, loader=loader, val_set=val_set,
                     steps_per_epoch=steps_per_epoch)
