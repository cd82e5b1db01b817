"""Per-family training losses, computed from waveform excerpts.

Shape letters: B batch, S stems, C channels, L samples, F frequency bins, T frames.

| ``train.loss`` | mask_cnn                                   | lstm / unet                         |
|----------------|--------------------------------------------|-------------------------------------|
| bce            | BCE on logits vs binary mask B = S > T*M   | (not available: no logits)          |
| mse            | MSE of the mask vs B (the seed study)      | MSE of mask*M vs S (magnitudes)     |
| l1             | L1 of mask*M vs S                          | L1 of mask*M vs S                   |
| mrstft         | multi-resolution STFT loss of the waveform estimates, any model  |
| auto           | bce                                        | lstm: mse, unet: l1                 |

``train.time_loss_weight > 0`` adds ``weight * L1`` between the estimated and true waveforms
(the estimates are the masked mixture STFT, inverted).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from stemsplit.audio.stft import STFT
from stemsplit.config import Config, ConfigError, STFTConfig

AUTO_LOSS = {"mask_cnn": "bce", "lstm": "mse", "unet": "l1"}
MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) pairs


def resolve_loss(cfg: Config) -> str:
    """The concrete loss for ``cfg``; ConfigError for a loss the model family cannot use."""
    kind = cfg.train.loss
    if kind == "auto":
        kind = AUTO_LOSS[cfg.model.name]
    if kind == "bce" and cfg.model.name != "mask_cnn":
        raise ConfigError(
            f"train.loss: 'bce' needs a model that outputs logits (mask_cnn), not "
            f"{cfg.model.name!r}; use mse, l1, mrstft or auto"
        )
    return kind


class TrainForward(nn.Module):
    """What DDP and torch.compile wrap: magnitudes -> logits (BCE) or masks.

    ``forward_logits`` must go through the wrapper's ``forward`` so that DDP's gradient
    hooks see it; calling the inner model's method directly would skip the sync.
    """

    def __init__(self, model: nn.Module, logits: bool):
        super().__init__()
        self.model = model
        self.logits = logits

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) -> (B, S, C, F, T) logits or masks."""
        return self.model.forward_logits(mag) if self.logits else self.model(mag)


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, float32
    mask_accuracy: torch.Tensor | None = None  # (S,) fraction of right binary-mask bins (mask_cnn)


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over ``MRSTFT_RESOLUTIONS``.

    ``estimate``, ``target``: (..., L) waveforms.
    """
    total = estimate.new_zeros(())
    for n_fft, hop in MRSTFT_RESOLUTIONS:
        stft = STFT(STFTConfig(n_fft=n_fft, hop_length=hop))
        est, ref = stft(estimate).abs(), stft(target).abs()
        convergence = torch.linalg.vector_norm(ref - est) / torch.linalg.vector_norm(ref).clamp_min(1e-7)
        log_mag = F.l1_loss(torch.log(est.clamp_min(1e-7)), torch.log(ref.clamp_min(1e-7)))
        total = total + convergence + log_mag
    return total / len(MRSTFT_RESOLUTIONS)


class SeparationLoss:
    """Runs the model on an excerpt batch and returns its family's loss.

    ``__call__(net, mixture (B, C, L), sources (B, S, C, L))``: the STFT and the loss run in
    float32; only ``net`` runs under ``autocast`` (a context manager, or None).
    """

    def __init__(self, cfg: Config):
        self.kind = resolve_loss(cfg)
        self.family = cfg.model.name
        self.threshold = cfg.train.mask_threshold
        self.time_weight = cfg.train.time_loss_weight
        self.stft = STFT(cfg.stft)

    @property
    def wants_logits(self) -> bool:
        return self.kind == "bce"

    @property
    def binary_target(self) -> bool:
        """True when the loss compares masks with the binary target B (the seed study's losses)."""
        return self.family == "mask_cnn" and self.kind in ("bce", "mse")

    def __call__(self, net: nn.Module, mixture: torch.Tensor, sources: torch.Tensor,
                 autocast=None) -> LossOutput:
        mix_spec = self.stft(mixture.float())                          # (B, C, F, T)
        mix_mag = mix_spec.abs()
        src_mag = self.stft(sources.float()).abs()                     # (B, S, C, F, T)
        if autocast is None:
            out = net(mix_mag)
        else:
            with autocast:
                out = net(mix_mag)
        out = out.float()                                              # (B, S, C, F, T)

        accuracy = None
        if self.family == "mask_cnn":
            target = (src_mag > self.threshold * mix_mag.unsqueeze(1)).float()
            predicted = out > 0 if self.wants_logits else out > 0.5
            accuracy = (predicted == target.bool()).float().mean(dim=(0, 2, 3, 4)).detach()

        if self.kind == "bce":
            loss = F.binary_cross_entropy_with_logits(out, target)
        elif self.kind == "mse" and self.binary_target:
            loss = F.mse_loss(out, target)
        elif self.kind == "mse":
            loss = F.mse_loss(out * mix_mag.unsqueeze(1), src_mag)
        elif self.kind == "l1":
            loss = F.l1_loss(out * mix_mag.unsqueeze(1), src_mag)
        else:  # mrstft
            loss = multi_resolution_stft_loss(self._waveforms(out, mix_spec, mixture), sources.float())

        if self.time_weight > 0:
            masks = torch.sigmoid(out) if self.wants_logits else out
            estimate = self._waveforms(masks, mix_spec, mixture)
            loss = loss + self.time_weight * F.l1_loss(estimate, sources.float())
        return LossOutput(loss=loss, mask_accuracy=accuracy)

    def _waveforms(self, masks: torch.Tensor, mix_spec: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
        """Masks (B, S, C, F, T) applied to the mixture STFT, inverted -> (B, S, C, L)."""
        return self.stft.inverse(masks * mix_spec.unsqueeze(1), length=mixture.shape[-1])
