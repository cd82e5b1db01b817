"""The numpy STFT / inverse-STFT pair: the same numbers as ``stemsplit.audio.stft`` without torch.

It reproduces ``torch.stft`` / ``torch.istft`` as ``STFT`` calls them: a periodic Hann window,
``center=True`` framing with reflect padding (constant padding when the input is too short to
reflect), and overlap-add divided by the summed squared window. float32 in, complex64 out, so
``inverse(forward(x), len(x))`` returns ``x`` to float32 precision (see tests).
"""
from __future__ import annotations

import numpy as np

from stemsplit.config import STFTConfig
from stemsplit.errors import ConfigError

_ENVELOPE_FLOOR = 1e-11  # torch.istft refuses an envelope below this; here those samples are 0


def hann(n_fft: int) -> np.ndarray:
    """(n_fft,) float32 periodic Hann window, as ``torch.hann_window(n_fft, periodic=True)``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


class NumpySTFT:
    def __init__(self, cfg: STFTConfig):
        if cfg.window != "hann":
            raise ConfigError(f"stft.window: only 'hann' is supported, got {cfg.window!r}")
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.window = hann(self.n_fft)
        self._envelopes: dict[int, np.ndarray] = {}

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        return length // self.hop_length + 1

    def forward(self, wav: np.ndarray) -> np.ndarray:
        """(..., time) real -> (..., freq, frames) complex64."""
        wav = np.asarray(wav, dtype=np.float32)
        half = self.n_fft // 2
        mode = "reflect" if wav.shape[-1] > half else "constant"
        padded = np.pad(wav, [(0, 0)] * (wav.ndim - 1) + [(half, half)], mode=mode)
        # (..., frames, n_fft) views into the padded signal: no copy until the window multiplies
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=-1)[..., :: self.hop_length, :]
        spec = np.fft.rfft(frames * self.window, axis=-1)  # (..., frames, freq)
        return np.ascontiguousarray(np.swapaxes(spec, -1, -2), dtype=np.complex64)

    __call__ = forward

    def _envelope(self, n_frames: int) -> np.ndarray:
        """Summed squared window over ``n_frames`` frames, float32 (cached per frame count)."""
        env = self._envelopes.get(n_frames)
        if env is None:
            sq = np.broadcast_to(self.window ** 2, (n_frames, self.n_fft))
            env = self._overlap_add(sq, n_frames)
            self._envelopes = {n_frames: env}  # one entry: segments mostly share a length
        return env

    def _overlap_add(self, frames: np.ndarray, n_frames: int) -> np.ndarray:
        """(..., frames, n_fft) -> (..., n_fft + hop * (frames - 1)) summed at hop spacing."""
        hop, n_fft = self.hop_length, self.n_fft
        out = np.zeros(frames.shape[:-2] + (n_fft + hop * (n_frames - 1),), dtype=np.float32)
        if n_fft % hop == 0:
            # each frame as n_fft/hop slices of one hop: slice j of frame t lands at block t + j,
            # so the whole sum is n_fft/hop vectorised adds
            blocks = out.reshape(*out.shape[:-1], -1, hop)  # a view: out is hop * (frames - 1 + n_fft / hop) long
            parts = frames.reshape(*frames.shape[:-1], n_fft // hop, hop)
            for j in range(n_fft // hop):
                blocks[..., j: j + n_frames, :] += parts[..., j, :]
        else:
            for t in range(n_frames):
                out[..., t * hop: t * hop + n_fft] += frames[..., t, :]
        return out

    def inverse(self, spec: np.ndarray, length: int) -> np.ndarray:
        """(..., freq, frames) complex -> (..., length) float32."""
        n_frames = spec.shape[-1]
        frames = np.fft.irfft(np.swapaxes(spec, -1, -2), n=self.n_fft, axis=-1)  # (..., frames, n_fft)
        frames = frames.astype(np.float32, copy=False)
        frames *= self.window
        y = self._overlap_add(frames, n_frames)
        env = self._envelope(n_frames)
        start = self.n_fft // 2
        end = min(start + length, y.shape[-1])
        y, env = y[..., start:end], env[start:end]
        y = np.divide(y, env, out=np.zeros_like(y), where=env > _ENVELOPE_FLOOR)
        if y.shape[-1] < length:  # torch.istft pads with zeros past the last frame
            y = np.concatenate([y, np.zeros(y.shape[:-1] + (length - y.shape[-1],), np.float32)], axis=-1)
        return y
