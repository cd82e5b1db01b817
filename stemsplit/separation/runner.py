"""The seam between the separation engine and a network runtime (torch or ONNX Runtime).

The engine (``engine.py``) does everything numeric around the network in numpy: STFT, masking,
Wiener filter, iSTFT, chunking. A runtime only maps arrays to arrays. Shape letters: B batch,
C channels, F frequency bins, T frames, S stems, L samples. This module imports numpy only.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from stemsplit.config import Config


@runtime_checkable
class NetworkRunner(Protocol):
    """What the engine asks of a network, whatever runs it.

    ``config`` carries the STFT settings, the audio (sample rate, channels), the stems and the
    model's separation defaults (``config.separate``). ``spectral`` says which of the two
    methods the engine calls: ``stem_magnitudes`` (True) or ``stem_waveforms`` (False).

    A spectral runner whose network gives masks may also set ``mask_output = True`` and give
    ``stem_masks(mag, out=None)`` ((B, C, F, T) -> (B, S, C, F, T) masks, written into ``out``, an
    array the engine reuses from segment to segment, when given): the engine then applies each mask
    to the mixture's complex spectrum in one multiply, instead of the runner scaling |X| and the
    engine putting the mixture's phase back (the same stems, for less work on both threads).
    """

    config: Config
    spectral: bool

    def context_frames(self) -> int | None:
        """STFT frames of context each output frame needs on each side; None: unbounded."""
        ...

    def stem_magnitudes(self, mag: np.ndarray) -> np.ndarray:
        """(B, C, F, T) float32 |STFT| of the mixture -> (B, S, C, F, T) float32 stem magnitudes."""
        ...

    def stem_waveforms(self, wav: np.ndarray) -> np.ndarray:
        """(B, C, L) float32 -> (B, S, C, L) float32."""
        ...
