"""The model contract: what every architecture declares, and what the rest of stemsplit asks.

Code outside ``stemsplit/models/`` never asks a model its name. It asks the class attributes
and methods below, so a new architecture is one file in this folder (a ``SeparationModel``
subclass registered with ``@register``) and one config in ``configs/``.

Shape letters: B batch, C channels, F frequency bins, T frames, S stems, L samples,
D embedding size.

What a model declares
---------------------
``params_class``
    The dataclass of its own config fields. In YAML they sit beside the name:
    ``model: {name: <name>, hidden_size: 256}``. ``check_params`` rejects values the model
    cannot take, as one-line ``ConfigError``s, before anything is built.
``input_kind`` (what ``forward`` consumes)
    ``magnitude``: (B, C, F, T) |STFT| of the mixture; ``waveform``: (B, C, L) samples.
``output_kind`` (what ``forward`` produces)
    ``masks``: (B, S, C, F, T) in [0, 1]; ``spectrograms``: (B, S, C, F, T) magnitudes;
    ``waveforms``: (B, S, C, L); ``embeddings``: a pair (embeddings (B, C, F, T, D), masks
    (B, S, C, F, T) or None): one unit vector per time-frequency bin, and optionally a mask head
    trained beside them (chimera); ``mask_head_weight(params)`` weighs that head's loss.
``target`` and ``default_loss``
    What the training losses compare the output with (``magnitude``: the stems' |STFT|,
    ``binary_mask``: B = |S| > threshold * |M|, ``waveform``, ``affinity``), and the loss
    ``train.loss: auto`` resolves to. ``has_logits`` says the model has ``forward_logits``
    (pre-sigmoid masks), which logit losses (bce) need.
``trained_by``
    ``gradient`` (the default): the training loop's AdamW steps on the loss. ``fit``: no
    gradient; ``training/fit.py`` hands every training batch's magnitudes to ``fit_step`` and
    calls ``finish_fit`` at the end, then validates and writes checkpoints like any run. What a
    fit learns must live in parameters or buffers, so that it is in the state_dict.
``context_frames()``
    STFT frames of context each output frame needs on each side; ``None`` when unbounded
    (recurrent models). The engine keeps every segment's discarded margin at least this wide.
How separation turns output into stems
    ``stem_magnitudes`` (spectral models) gives (B, S, C, F, T) magnitude estimates, which the
    engine combines with the mixture phase or the Wiener filter; ``stem_waveforms`` (waveform
    models) gives (B, S, C, L) directly.
``export_module()`` and ``exported_output_kind``
    What ``stemsplit export`` writes as an ONNX graph: a module of tensor ops (no data-dependent
    Python control flow, no numpy) mapping the model input to ``exported_output_kind``
    (``masks``, ``spectrograms`` or ``waveforms``) as separation uses them. The default is the
    model itself and its ``output_kind``; a family whose ``forward`` is not what separation uses
    (embeddings clustered afterwards, a numpy backend) overrides both.
Streaming (``is_causal()``, ``stream_state``, ``forward_stream``, ``stream_module``)
    A causal model's output frame t depends on input frames <= t + ``lookahead_frames()``
    only, so it can separate a live stream frame by frame. Its recurrent state is explicit:
    ``stream_state(batch)`` gives the zero state (a tuple of tensors), ``forward_stream(x,
    *state)`` maps (B, C, F, T) input frames and the state before them to (the output of
    ``forward`` for those frames, *the state after them), so that running a signal through it
    in pieces gives exactly what one ``forward`` gives. ``stream_module()`` is that step as a
    traceable module for ONNX export, the state as graph inputs and outputs. Offline models
    keep the defaults (not causal, no state).
``set_input_stats(mean, std)``
    Training initialises input normalisation from the dataset's per-bin statistics of
    log1p(|STFT|); models without it ignore the call.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

INPUT_KINDS = ("magnitude", "waveform")
OUTPUT_KINDS = ("masks", "spectrograms", "waveforms", "embeddings")
TARGETS = ("magnitude", "binary_mask", "waveform", "affinity")
TRAINED_BY = ("gradient", "fit")


class SeparationModel(nn.Module):
    """Base class of every architecture; subclasses set the class attributes and ``forward``."""

    name: ClassVar[str] = ""  # set by @register
    params_class: ClassVar[type]
    input_kind: ClassVar[str] = "magnitude"
    output_kind: ClassVar[str] = "masks"
    target: ClassVar[str] = "magnitude"
    default_loss: ClassVar[str] = "mse"
    has_logits: ClassVar[bool] = False
    is_ensemble: ClassVar[bool] = False  # runs other trained models as one (model_section)
    trained_by: ClassVar[str] = "gradient"

    def __init__(self, params: Any, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__()
        self.params = params
        self.n_bins, self.n_channels, self.n_stems = n_bins, n_channels, n_stems

    # --- declared by subclasses where the default does not fit ---------------------------

    @classmethod
    def check_params(cls, params: Any, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        """Raise ``ConfigError`` (one line, naming ``model.<field>``) for values the model cannot take."""

    def context_frames(self) -> int | None:
        """Frames of context needed on each side of an output frame; None: unbounded."""
        return None

    @torch.no_grad()
    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-bin (F,) mean and std of log1p(|STFT|) over the training data."""
        norm = getattr(self, "norm", None)
        if norm is not None:
            norm.set_stats(mean, std)

    @classmethod
    def mask_head_weight(cls, params: Any) -> float:
        """Embeddings models: weight of the magnitude loss on the mask head beside the affinity loss."""
        return 0.0

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"model {self.name!r} has no logits (has_logits is False)")

    # --- separation ----------------------------------------------------------------------

    def stem_magnitudes(self, model_input: torch.Tensor, mix_mag: torch.Tensor) -> torch.Tensor:
        """Spectral models: model input and (B, C, F, T) mixture magnitude -> (B, S, C, F, T) estimates."""
        out = self(model_input)
        if self.output_kind == "masks":
            return out * mix_mag.unsqueeze(1)
        if self.output_kind == "spectrograms":
            return out
        raise NotImplementedError(f"model {self.name!r} must define stem_magnitudes for {self.output_kind}")

    def stem_waveforms(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform models: (B, C, L) mixture -> (B, S, C, L) stems."""
        return self(wav)

    # --- export (ONNX) -------------------------------------------------------------------

    @property
    def exported_output_kind(self) -> str:
        """What ``export_module()`` returns: masks, spectrograms or waveforms."""
        return self.output_kind

    def export_module(self) -> nn.Module:
        """The network as separation uses it, traceable for ONNX: input -> ``exported_output_kind``."""
        return self

    # --- streaming (causal models) ------------------------------------------------------

    def is_causal(self) -> bool:
        """True when output frame t needs input frames up to t + lookahead_frames() only."""
        return False

    def lookahead_frames(self) -> int:
        """Future STFT frames a causal model reads beyond the frame it outputs."""
        return 0

    def stream_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """The zero recurrent state for ``batch`` streams (causal models)."""
        raise NotImplementedError(f"model {self.name!r} is not causal: it cannot stream")

    def forward_stream(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(output of ``forward`` for the frames of ``x``, *the state after them)."""
        raise NotImplementedError(f"model {self.name!r} is not causal: it cannot stream")

    def stream_module(self) -> nn.Module:
        """``forward_stream`` as a module's forward, traceable for ONNX (weights as a submodule)."""
        return MethodModule(self, "forward_stream")

    # --- models trained without gradients (trained_by == "fit") ----------------------------

    def fit_step(self, mix_mag: torch.Tensor, src_mag: torch.Tensor) -> float:
        """Learn from one batch: (B, C, F, T) mixture and (B, S, C, F, T) stem magnitudes.

        Returns the batch's fitting loss (what the training log shows)."""
        raise NotImplementedError(f"model {self.name!r} is trained by gradient, not fitted")

    def finish_fit(self) -> None:
        """Called once after the last ``fit_step`` of a run (before the final checkpoint)."""

    @property
    def spectral(self) -> bool:
        """True when separation goes through the STFT (every input kind but waveform)."""
        return self.input_kind != "waveform"


class MethodModule(nn.Module):
    """``model.<method>`` as a module's ``forward``: how a family exports a separation step
    that is not its ``forward`` (the model's weights come along as a submodule)."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor, *rest: torch.Tensor):
        return getattr(self.model, self.method)(x, *rest)
