"""Training augmentations applied to one excerpt's stems before they are summed into a mixture.

Every function takes the excerpt's own ``numpy.random.Generator`` so that an excerpt depends
only on (seed, epoch, index), whichever DataLoader worker draws it.

- per-stem gain: uniform in [-gain_db, +gain_db] dB, drawn for each stem
- channel swap: each stereo stem swaps left and right with probability 1/2
- pitch shift / time stretch (off by default): one shift and one rate for the whole excerpt,
  so the stems stay in time and in key with each other. Pitch is changed by resampling with a
  small-integer ratio (a shift within about 0.5 % of the drawn one), tempo by a phase vocoder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF

from stemsplit.config import AugmentConfig

_VOCODER_FFT = 2048
_VOCODER_HOP = 512
_RESAMPLE_BASE = 128  # pitch ratios are approximated as _RESAMPLE_BASE / k (fast resampling)


def draw_gains(stems: int, gain_db: float, rng: np.random.Generator) -> np.ndarray:
    """(stems,) linear gains, each uniform in [-gain_db, +gain_db] dB; ones when gain_db <= 0."""
    if gain_db <= 0:
        return np.ones(stems, dtype=np.float32)
    return (10.0 ** (rng.uniform(-gain_db, gain_db, size=stems) / 20.0)).astype(np.float32)


def draw_dropout(gains: np.ndarray, probability: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Silence each stem with ``probability`` (one for all, or (stems,) one each; gain 0), never
    every stem: the model also learns that a stem can be absent (no phantom vocals on
    instrumentals). No draw when every chance is 0."""
    if np.all(np.asarray(probability) <= 0):
        return gains
    drop = rng.random(gains.size) < probability
    if drop.all():
        drop[int(rng.integers(gains.size))] = False
    return np.where(drop, np.float32(0.0), gains).astype(np.float32)


def draw_swaps(stems: int, channels: int, enabled: bool, rng: np.random.Generator) -> np.ndarray:
    """(stems,) bools: which stereo stems swap left and right (each with probability 1/2)."""
    if not enabled or channels != 2:
        return np.zeros(stems, dtype=bool)
    return rng.random(stems) < 0.5


@dataclass
class Warp:
    """One excerpt's pitch shift and tempo change. ``rate`` > 1 plays faster."""

    semitones: float = 0.0
    rate: float = 1.0

    @property
    def identity(self) -> bool:
        return self.semitones == 0.0 and self.rate == 1.0

    def _pitch_ratio(self) -> tuple[int, int]:
        """(orig, new) resampling frequencies: new/orig ~ 2 ** (-semitones / 12)."""
        if self.semitones == 0.0:
            return 1, 1
        new = max(1, round(_RESAMPLE_BASE * 2.0 ** (-self.semitones / 12.0)))
        return _RESAMPLE_BASE, new

    def input_frames(self, out_frames: int) -> int:
        """How many samples to read so that the warped excerpt has ``out_frames`` samples."""
        return out_frames if self.identity else int(math.ceil(out_frames * self.rate)) + _VOCODER_HOP

    def apply(self, sources: np.ndarray, out_frames: int) -> np.ndarray:
        """sources (stems, channels, input_frames) -> (stems, channels, out_frames) float32."""
        if self.identity:
            return sources
        shape = sources.shape
        wav = torch.from_numpy(np.ascontiguousarray(sources)).reshape(-1, shape[-1])
        orig, new = self._pitch_ratio()
        if orig != new:  # fewer samples played at the same rate: pitch and tempo up by orig/new
            wav = AF.resample(wav, orig, new)
        vocoder_rate = self.rate * new / orig
        if abs(vocoder_rate - 1.0) > 1e-6:
            window = torch.hann_window(_VOCODER_FFT)
            spec = torch.stft(wav, _VOCODER_FFT, _VOCODER_HOP, window=window, center=True,
                              return_complex=True)
            advance = torch.linspace(0, math.pi * _VOCODER_HOP, spec.shape[-2])[..., None]
            spec = AF.phase_vocoder(spec, vocoder_rate, advance)
            length = int(round(wav.shape[-1] / vocoder_rate))
            wav = torch.istft(spec, _VOCODER_FFT, _VOCODER_HOP, window=window, center=True, length=length)
        if wav.shape[-1] < out_frames:
            wav = torch.nn.functional.pad(wav, (0, out_frames - wav.shape[-1]))
        return wav[:, :out_frames].reshape(*shape[:-1], out_frames).numpy().astype(np.float32)


def draw_warp(cfg: AugmentConfig | None, rng: np.random.Generator) -> Warp:
    """A random pitch shift in [-x, x] semitones and rate in [1-x, 1+x] for a share
    ``warp_probability`` of excerpts (the warp costs ~100x an unwarped excerpt's reading);
    identity when disabled."""
    if cfg is None or (cfg.pitch_shift_semitones <= 0 and cfg.time_stretch <= 0):
        return Warp()
    # drawn only below 1, so that runs with every excerpt warped keep their excerpts
    if cfg.warp_probability < 1.0 and rng.random() >= cfg.warp_probability:
        return Warp()
    semitones = float(rng.uniform(-cfg.pitch_shift_semitones, cfg.pitch_shift_semitones)) \
        if cfg.pitch_shift_semitones > 0 else 0.0
    rate = float(rng.uniform(1.0 - cfg.time_stretch, 1.0 + cfg.time_stretch)) if cfg.time_stretch > 0 else 1.0
    return Warp(semitones, max(rate, 0.05))
