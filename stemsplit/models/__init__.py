"""The model registry: ``model.name`` in a config -> architecture class.

Every model maps a magnitude spectrogram ``(batch, channels, freq, frames)`` to masks
``(batch, stems, channels, freq, frames)`` in [0, 1]. Model files import only torch and the
config types.
"""
from __future__ import annotations

from torch import nn

from stemsplit.config import Config, ConfigError
from stemsplit.models.lstm import LSTMSeparator
from stemsplit.models.mask_cnn import MaskCNN
from stemsplit.models.unet import UNet

MODELS: dict[str, type[nn.Module]] = {
    "mask_cnn": MaskCNN,
    "lstm": LSTMSeparator,
    "unet": UNet,
}


def model_args(cfg: Config) -> dict:
    """The constructor arguments beside ``params``; stored in checkpoints for self-description."""
    return {"n_bins": cfg.n_bins, "n_channels": cfg.audio.channels, "n_stems": len(cfg.stems)}


def build_model(cfg: Config) -> nn.Module:
    try:
        cls = MODELS[cfg.model.name]
    except KeyError:
        raise ConfigError(
            f"model.name: unknown model {cfg.model.name!r}; valid models are: {', '.join(MODELS)}"
        ) from None
    return cls(cfg.model.params, **model_args(cfg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
