"""Training-specific config checks, run before any work so a bad value fails in one line."""
from __future__ import annotations

from stemsplit.config import Config, ConfigError
from stemsplit.training.losses import resolve_loss


def check_train_config(cfg: Config) -> None:
    t, d = cfg.train, cfg.data
    positive = {"train.batch_size": t.batch_size, "train.epochs": t.epochs, "train.lr": t.lr,
                "train.checkpoint_every_steps": t.checkpoint_every_steps,
                "train.log_every_steps": t.log_every_steps, "train.val_excerpts": t.val_excerpts,
                "data.excerpt_seconds": d.excerpt_seconds, "data.samples_per_epoch": d.samples_per_epoch}
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key}: must be > 0, got {value}")
    non_negative = {"train.max_steps": t.max_steps, "train.warmup_steps": t.warmup_steps,
                    "train.weight_decay": t.weight_decay, "train.grad_clip": t.grad_clip,
                    "train.time_loss_weight": t.time_loss_weight, "train.wsdr_weight": t.wsdr_weight,
                    "train.mixture_consistency_weight": t.mixture_consistency_weight,
                    "train.val_every_steps": t.val_every_steps,
                    "train.early_stopping_patience": t.early_stopping_patience,
                    "train.val_tracks": t.val_tracks, "data.num_workers": d.num_workers}
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key}: must be >= 0, got {value}")
    if not 0.0 < t.mask_threshold:
        raise ConfigError(f"train.mask_threshold: must be > 0, got {t.mask_threshold}")
    if not 0.0 <= d.augment.stem_dropout < 1.0:
        raise ConfigError(f"data.augment.stem_dropout: must be in [0, 1), got {d.augment.stem_dropout}")
    per_stem = d.augment.stem_dropout_per_stem
    if per_stem and (len(per_stem) != len(cfg.stems) or not all(0.0 <= p < 1.0 for p in per_stem)):
        raise ConfigError(f"data.augment.stem_dropout_per_stem: {per_stem} needs one chance in [0, 1) for each "
                          f"of the {len(cfg.stems)} stems ({', '.join(cfg.stems)}), in that order")
    if not 0.0 < t.plateau_factor < 1.0:
        raise ConfigError(f"train.plateau_factor: must be in (0, 1), got {t.plateau_factor}")
    if t.plateau_patience < 1:
        raise ConfigError(f"train.plateau_patience: must be >= 1, got {t.plateau_patience}")
    hop_seconds = cfg.stft.hop_length / cfg.audio.sample_rate
    if d.excerpt_seconds < 4 * hop_seconds:
        raise ConfigError(f"data.excerpt_seconds: {d.excerpt_seconds} s is shorter than four STFT hops "
                          f"({4 * hop_seconds:.3f} s)")
    if d.weights:
        if len(d.weights) != 1 + len(d.extra):
            raise ConfigError(f"data.weights: {len(d.weights)} weight(s) for {1 + len(d.extra)} dataset(s); give one "
                              "per dataset, --data first and then each data.extra")
        if min(d.weights) < 0 or sum(d.weights) <= 0:
            raise ConfigError(f"data.weights: {d.weights} must be >= 0 with a positive sum")
    if d.train_on_valid and (t.early_stopping_patience or t.schedule == "plateau"):
        raise ConfigError("data.train_on_valid: a final fit may not steer by its validation, which it trains on; "
                          "set train.early_stopping_patience=0 and a cosine or constant train.schedule")
    resolve_loss(cfg)
