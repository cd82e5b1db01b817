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
(for spectral models the estimates are the masked mixture STFT, inverted). The further terms
of ``loss_terms.py`` (weighted SDR, stem combinations, mixture consistency) are config options.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemsplit.audio.stft import STFT
from stemsplit.config import Config, ConfigError, STFTConfig
from stemsplit.models import model_class
from stemsplit.training.affinity import AffinityLoss
from stemsplit.training.loss_terms import combination_sums, mixture_consistency, weighted_sdr

LOSSES = ("bce", "mse", "l1", "mrstft", "affinity")
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
    if (kind == "affinity") != (model.target == "affinity"):  # embeddings learn affinities, and only they
        raise ConfigError(f"train.loss: {cfg.model.name!r} trains with "
                          f"{'affinity' if model.target == 'affinity' else 'bce, mse, l1 or mrstft'} "
                          f"(or auto), not {kind!r}")
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
        self.output_kind, self.target = model.output_kind, model.target
        self.threshold = cfg.train.mask_threshold
        self.time_weight = cfg.train.time_loss_weight
        self.wsdr_weight = cfg.train.wsdr_weight
        self.combine = cfg.train.combination_loss
        self.consistency_weight = cfg.train.mixture_consistency_weight
        self.stft = STFT(cfg.stft)
        self.affinity = AffinityLoss(cfg) if self.target == "affinity" else None
        if self.combine and (self.binary_target or self.kind not in ("mse", "l1")):
            raise ConfigError(f"train.combination_loss: works with the magnitude losses mse and l1, not "
                              f"{self.kind!r} on a {self.target} target; set train.loss to mse or l1")

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
        if self.affinity is not None:  # embeddings models (training/affinity.py)
            return LossOutput(loss=self.affinity(net, mixture, sources, autocast))
        if self.output_kind == "waveforms":
            return self._waveform_loss(self._run(net, mixture, autocast), sources)
        mix_spec = self.stft(mixture)                                  # (B, C, F, T)
        mix_mag = mix_spec.abs()
        src_spec = self.stft(sources)                                  # (B, S, C, F, T)
        src_mag = src_spec.abs()
        out = self._run(net, mix_mag, autocast)

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

        if self.combine:  # every sum of 1..S-1 stems; estimates share the mixture phase, so magnitudes add
            est_mag = combination_sums(est_mag, est_mag.shape[1])
            src_mag = combination_sums(src_spec, src_spec.shape[1]).abs()
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
        extra = self._extra_terms(estimates, est_mag, mix_mag, mixture, sources)
        if torch.is_tensor(extra):
            loss = loss + extra
        return LossOutput(loss=loss, mask_accuracy=accuracy)

    def _extra_terms(self, estimates, est_mag: torch.Tensor, mix_mag: torch.Tensor, mixture: torch.Tensor,
                     sources: torch.Tensor) -> torch.Tensor | float:
        """The weighted-SDR and mixture-consistency terms (0 when both are off)."""
        extra = 0.0
        if self.wsdr_weight > 0:
            est, ref = estimates(), sources
            if self.combine:
                est, ref = combination_sums(est, est.shape[1]), combination_sums(ref, ref.shape[1])
            extra = extra + self.wsdr_weight * weighted_sdr(est, ref, mixture)
        if self.consistency_weight > 0:
            singles = est_mag[:, : sources.shape[1]]  # under combination_loss the single stems come first
            extra = extra + self.consistency_weight * mixture_consistency(singles, mix_mag)
        return extra

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
        if self.wsdr_weight > 0:
            loss = loss + self.wsdr_weight * weighted_sdr(estimate, sources, sources.sum(1))
        if self.consistency_weight > 0:
            loss = loss + self.consistency_weight * (estimate.sum(1) - sources.sum(1)).abs().mean()
        return LossOutput(loss=loss)
