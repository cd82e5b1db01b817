"""Training losses, chosen by name and by what the model's contract declares.

Shape letters: B batch, S stems, C channels, L samples, F frequency bins, T frames.

The model's ``target`` decides what its masks are compared with, its ``default_loss`` what
``train.loss: auto`` means, and ``has_logits`` whether the logit loss (bce) is available:

| ``train.loss`` | target ``binary_mask``                   | target ``magnitude`` (masks or spectrograms) |
|----------------|------------------------------------------|----------------------------------------------|
| bce            | BCE on logits vs binary mask B = S > T*M | (not available: compares binary masks)       |
| mse            | MSE of the mask vs B (the seed study)    | MSE of the estimated vs true magnitudes      |
| l1             | L1 of mask*M vs S                        | L1 of the estimated vs true magnitudes       |
| mrstft         | multi-resolution STFT loss of the waveform estimates, any model         |

Waveform models (output ``waveforms``) take mse, l1 or mrstft on the waveforms themselves.
``train.time_loss_weight > 0`` adds ``weight * L1`` between the estimated and true waveforms
(for spectral models the estimates are the masked mixture STFT, inverted).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from stemsplit.audio.stft import STFT
from stemsplit.config import Config, ConfigError, STFTConfig
from stemsplit.models import model_class

LOSSES = ("bce", "mse", "l1", "mrstft")
MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop) pairs


def resolve_loss(cfg: Config) -> str:
    """The concrete loss for ``cfg``; ConfigError for a loss the model cannot use."""
    model = model_class(cfg.model.name)
    kind = model.default_loss if cfg.train.loss == "auto" else cfg.train.loss
    if kind == "bce" and not (model.has_logits and model.target == "binary_mask"):
        raise ConfigError(
            f"train.loss: 'bce' needs a model that predicts binary masks as logits, and "
            f"{cfg.model.name!r} does not; use mse, l1, mrstft or auto"
        )
    if kind not in LOSSES:
        raise ConfigError(f"train.loss: {kind!r} is not one of: auto, {', '.join(LOSSES)}")
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
    mask_accuracy: torch.Tensor | None = None  # (S,) fraction of right binary-mask bins (binary-mask models)


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
    """Runs the model on an excerpt batch and returns its loss.

    ``__call__(net, mixture (B, C, L), sources (B, S, C, L))``: the STFT and the loss run in
    float32; only ``net`` runs under ``autocast`` (a context manager, or None).
    """

    def __init__(self, cfg: Config):
        self.kind = resolve_loss(cfg)
        model = model_class(cfg.model.name)
        self.input_kind, self.output_kind, self.target = model.input_kind, model.output_kind, model.target
        self.threshold = cfg.train.mask_threshold
        self.time_weight = cfg.train.time_loss_weight
        self.stft = STFT(cfg.stft)

    @property
    def wants_logits(self) -> bool:
        return self.kind == "bce"

    @property
    def reports_accuracy(self) -> bool:
        """Binary-mask models report the share of bins whose mask is right."""
        return self.target == "binary_mask"

    @property
    def binary_target(self) -> bool:
        """True when the loss compares masks with the binary target B (the seed study's losses)."""
        return self.target == "binary_mask" and self.kind in ("bce", "mse")

    def __call__(self, net: nn.Module, mixture: torch.Tensor, sources: torch.Tensor,
                 autocast=None) -> LossOutput:
        mixture, sources = mixture.float(), sources.float()
        if self.output_kind == "waveforms":
            return self._waveform_loss(self._run(net, mixture, autocast), sources)
        mix_spec = self.stft(mixture)                                  # (B, C, F, T)
        mix_mag = mix_spec.abs()
        src_mag = self.stft(sources).abs()                             # (B, S, C, F, T)
        out = self._run(net, mix_spec if self.input_kind == "complex" else mix_mag, autocast)

        accuracy = None
        if self.reports_accuracy:
            target = (src_mag > self.threshold * mix_mag.unsqueeze(1)).float()
            predicted = out > 0 if self.wants_logits else out > 0.5
            accuracy = (predicted == target.bool()).float().mean(dim=(0, 2, 3, 4)).detach()
        masks = torch.sigmoid(out) if self.wants_logits else out
        est_mag = masks * mix_mag.unsqueeze(1) if self.output_kind == "masks" else out

        def estimates() -> torch.Tensor:
            """(B, S, C, L) waveforms: masks apply to the complex mixture, magnitudes take its phase."""
            spec = (masks * mix_spec.unsqueeze(1) if self.output_kind == "masks"
                    else est_mag * (mix_spec / mix_spec.abs().clamp_min(1e-12)).unsqueeze(1))
            return self.stft.inverse(spec, length=mixture.shape[-1])

        if self.kind == "bce":
            loss = F.binary_cross_entropy_with_logits(out, target)
        elif self.kind == "mse" and self.binary_target:
            loss = F.mse_loss(out, target)
        elif self.kind == "mse":
            loss = F.mse_loss(est_mag, src_mag)
        elif self.kind == "l1":
            loss = F.l1_loss(est_mag, src_mag)
        else:  # mrstft
            loss = multi_resolution_stft_loss(estimates(), sources)

        if self.time_weight > 0:
            loss = loss + self.time_weight * F.l1_loss(estimates(), sources)
        return LossOutput(loss=loss, mask_accuracy=accuracy)

    @staticmethod
    def _run(net: nn.Module, x: torch.Tensor, autocast) -> torch.Tensor:
        if autocast is None:
            return net(x).float()
        with autocast:
            return net(x).float()

    def _waveform_loss(self, estimate: torch.Tensor, sources: torch.Tensor) -> LossOutput:
        """(B, S, C, L) estimates against the true stems."""
        if self.kind == "mse":
            loss = F.mse_loss(estimate, sources)
        elif self.kind == "l1":
            loss = F.l1_loss(estimate, sources)
        else:  # mrstft
            loss = multi_resolution_stft_loss(estimate, sources)
        if self.time_weight > 0:
            loss = loss + self.time_weight * F.l1_loss(estimate, sources)
        return LossOutput(loss=loss)
