"""Chunked overlap-add separation with bounded memory.

The input is cut into segments of ``L`` samples that overlap by ``O``. Both are multiples of
the STFT hop, so every segment's frames fall on one global frame grid. Each segment is
separated on its own, weighted by a cross-fade window and added up:

    weight  0 ......../‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾‾\\........ 0
            |margin|ramp|            |ramp|margin|     margin = O/4, ramp = O/2

Neighbouring windows sum to exactly 1 inside every overlap, and each segment's first and
last ``O/4`` samples, where its STFT and model see padding instead of real context, get
zero weight. So a pass-through mask gives the input back, and a model whose receptive field
fits inside ``O/4`` gives the same output as one unchunked pass. A model that declares a
bounded context (``context_frames()``) gets an overlap whose margin covers it.

Segments are produced from a stream, so neither the input nor the output is ever held whole.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from stemsplit.audio.stft import STFT
from stemsplit.checkpoint import LoadedModel
from stemsplit.config import Config
from stemsplit.separation.wiener import wiener
from stemsplit.settings import EngineSettings, pick_device


def _either(flag, default):
    """A flag's value where given (None: not given), else the model config's own default."""
    return default if flag is None else flag


def crossfade_window(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """(length,) weights: zero margins and linear ramps at the inner edges (see module doc)."""
    w = torch.ones(length, dtype=torch.float64)
    if overlap <= 0:
        return w
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    ramp = (torch.arange(ramp_len, dtype=torch.float64) + 0.5) / ramp_len
    rise = torch.cat([torch.zeros(margin, dtype=torch.float64), ramp,
                      torch.ones(max(overlap - margin - ramp_len, 0), dtype=torch.float64)])[:overlap]
    if not first:
        n = min(overlap, length)
        w[:n] = rise[:n]
    if not last:
        w[-overlap:] = w[-overlap:] * rise.flip(0)
    return w


class Separator:
    """Separates (channels, time) audio at the model's sample rate into (stems, channels, time).

    The model's train/eval mode is left as it is: callers put it in eval mode.
    """

    def __init__(self, model: nn.Module, config: Config, settings: EngineSettings | None = None):
        self.settings = (settings or EngineSettings()).checked()
        self.config = config
        self.device = pick_device(self.settings.device)
        self.model = model.to(self.device)
        self.stft = STFT(config.stft)
        self.stems = list(config.stems)
        self.sample_rate = config.audio.sample_rate
        self.channels = config.audio.channels
        hop = config.stft.hop_length
        own, flags = config.separate, self.settings
        seconds = _either(flags.segment_seconds, own.segment_seconds)
        overlap = _either(flags.overlap, own.overlap)
        self.wiener_iterations = _either(flags.wiener_iterations, own.wiener_iterations)
        # stems that keep plain masking when the Wiener filter runs (separate.wiener_stems)
        self.plain_stems = [i for i, s in enumerate(self.stems) if own.wiener_stems and s not in own.wiener_stems]
        self.segment = max(4, round(seconds * self.sample_rate / hop)) * hop
        self.overlap = min(round(overlap * self.segment / hop) * hop, self.segment - hop)
        context = model.context_frames()
        if context is not None:
            # each segment's discarded margin (overlap / 4) must cover the model's context
            needed = 4 * (context + 1) * hop
            self.overlap = max(self.overlap, min(needed, self.segment - hop))

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, settings: EngineSettings | None = None) -> "Separator":
        return cls(loaded.model, loaded.config, settings)

    # --- one segment ---------------------------------------------------------------------

    def _separate_once(self, wav: torch.Tensor) -> torch.Tensor:
        """(C, n) -> (S, C, n), through the model's contract: spectral or waveform."""
        model = self.model
        if not model.spectral:
            return model.stem_waveforms(wav[None])[0]
        spec = self.stft(wav)                                           # (C, F, T)
        mag = spec.abs()
        model_input = spec if model.input_kind == "complex" else mag
        if self.wiener_iterations > 0:
            est_mag = model.stem_magnitudes(model_input[None], mag[None])[0]  # (S, C, F, T)
            est = wiener(spec, est_mag, self.wiener_iterations)
            if self.plain_stems:
                keep = self.plain_stems
                est[keep] = est_mag[keep] * (spec / mag.clamp_min(1e-12))[None]
        elif model.output_kind == "masks":
            est = model(model_input[None])[0] * spec[None]  # a mask applies to the complex STFT
        else:
            est_mag = model.stem_magnitudes(model_input[None], mag[None])[0]
            est = est_mag * (spec / mag.clamp_min(1e-12))[None]
        return self.stft.inverse(est, wav.shape[-1])

    def separate_segment(self, wav: torch.Tensor) -> torch.Tensor:
        """(C, n) -> (S, C, n), averaged over the configured sub-hop shifts."""
        wav = wav.to(self.device, torch.float32)
        shifts = max(1, self.settings.shifts)
        hop = self.config.stft.hop_length
        out = None
        for i in range(shifts):
            offset = i * hop // shifts
            x = torch.nn.functional.pad(wav, (offset, 0)) if offset else wav
            y = self._separate_once(x)[..., offset:]
            out = y if out is None else out + y
        return (out / shifts).cpu()

    # --- streaming -----------------------------------------------------------------------

    def stream(self, blocks: Iterable[torch.Tensor],
               on_segment: Callable[[int], None] | None = None) -> Iterator[torch.Tensor]:
        """Yield (S, C, m) output blocks for a stream of (C, n) input blocks, in order.

        ``on_segment(samples_done)`` is called after every segment.
        """
        seg, ov = self.segment, self.overlap
        stride = seg - ov
        pending = torch.zeros(self.channels, 0)
        tail = None  # weighted output of the previous segment's overlap region (S, C, ov)
        tail_w = None
        first, done = True, 0
        with torch.inference_mode():
            source = iter(blocks)
            exhausted = False
            while True:
                # a segment is final only when no sample follows it, so look one sample ahead
                while not exhausted and pending.shape[-1] <= seg:
                    try:
                        pending = torch.cat([pending, next(source).float()], dim=-1)
                    except StopIteration:
                        exhausted = True
                if pending.shape[-1] == 0:
                    break
                last = exhausted and pending.shape[-1] <= seg
                chunk = pending[:, : seg]
                n = chunk.shape[-1]
                w = crossfade_window(n, ov if n > ov else n, first, last).float()
                out = self.separate_segment(chunk) * w
                if tail is not None:
                    k = min(ov, n)
                    out[..., :k] += tail[..., :k]
                    w[:k] += tail_w[:k]
                if last:
                    yield out / w.clamp_min(1e-8)
                    done += n
                    if on_segment:
                        on_segment(done)
                    break
                ready = n - ov
                yield out[..., :ready] / w[:ready].clamp_min(1e-8)
                tail, tail_w = out[..., ready:], w[ready:]
                pending = pending[:, stride:]
                first = False
                done += stride
                if on_segment:
                    on_segment(done)

    def separate_tensor(self, mixture: torch.Tensor,
                        on_segment: Callable[[int], None] | None = None) -> torch.Tensor:
        """(channels, time) at the model's rate -> (stems, channels, time)."""
        if mixture.shape[-1] == 0:
            return torch.zeros(len(self.stems), mixture.shape[0], 0)
        return torch.cat(list(self.stream([mixture], on_segment)), dim=-1)

    def num_segments(self, length: int) -> int:
        if length <= self.segment:
            return 1
        stride = self.segment - self.overlap
        return 1 + -(-(length - self.segment) // stride)
