"""The room every part of a generated song is placed in: pan, EQ, one shared stereo reverb, echo.

Parts are filtered in the frequency domain, one forward and one inverse FFT per channel.
"""
from __future__ import annotations

import numpy as np


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT sizes that are quick without padding to a power of 2."""
    best = 1 << int(np.ceil(np.log2(n)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


class Room:
    """One stereo reverb shared by all parts of a song; parts differ only in their send level.

    Parts are filtered in the frequency domain (numpy's single-threaded FFT in complex64, so
    the result does not depend on the thread count): one forward and one inverse transform
    per channel covers pan, EQ, reverb and echo together.
    """

    def __init__(self, rng: np.random.Generator, n: int, sr: int):
        self.sr = sr
        self.rt60 = float(rng.uniform(0.4, 1.8))
        ir_len = int(min(self.rt60, 1.5) * sr)
        self.nfft = _fast_length(n + ir_len)
        t = np.arange(ir_len) / sr
        decay = np.exp(-6.9 * t / self.rt60)
        predelay = int(rng.uniform(0.01, 0.03) * sr)
        self.freqs = np.fft.rfftfreq(self.nfft, 1 / sr).astype(np.float32)
        damping = 1.0 / (1.0 + (self.freqs / np.float32(rng.uniform(3000, 8000))) ** 2)  # darker tail
        self.ir_spec = []
        for _ in range(2):  # decorrelated left/right tails give the width
            ir = rng.standard_normal(ir_len) * decay
            ir[:predelay] = 0
            ir *= 0.25 / np.sqrt(np.sum(ir ** 2))
            self.ir_spec.append((np.fft.rfft(ir.astype(np.float32), self.nfft) * damping).astype(np.complex64))

    def eq(self, highpass: float, lowpass: float) -> np.ndarray:
        f = np.maximum(self.freqs, np.float32(1.0))
        hp = np.float32(highpass) / f
        lp = f / np.float32(lowpass)
        return (1.0 / np.sqrt((1.0 + hp ** 4) * (1.0 + lp ** 4))).astype(np.float32)

    def _spectrum(self, mono: np.ndarray) -> np.ndarray:
        return np.fft.rfft(np.asarray(mono, dtype=np.float32), self.nfft)

    def _inverse(self, spec: np.ndarray, n: int) -> np.ndarray:
        return np.fft.irfft(spec, self.nfft)[:n]

    def place(self, mono: np.ndarray, pan: float, send: float, eq: np.ndarray,
              echo: tuple[float, float] | None = None) -> np.ndarray:
        """mono (n,) -> (2, n): equal-power pan, EQ, reverb send, optional echo (delay s, feedback)."""
        n = mono.shape[0]
        spec = self._spectrum(mono) * eq
        theta = (pan + 1) * np.pi / 4
        out = np.empty((2, n), dtype=np.float32)
        for c, gain in enumerate((np.cos(theta), np.sin(theta))):
            transfer = np.float32(gain) + np.float32(send) * self.ir_spec[c]
            if echo is not None:  # a few repeats, the right side a little later than the left
                delay, feedback = echo
                angle = (-2 * np.pi * delay * (1 + 0.03 * c)) * self.freqs.astype(np.float64)
                shift = (feedback * np.exp(1j * angle)).astype(np.complex64)
                transfer = transfer + np.float32(gain) * (shift + shift ** 2 + shift ** 3)
            out[c] = self._inverse(spec * transfer, n)
        return out

    def tail(self, stereo: np.ndarray, send: float, eq: np.ndarray) -> np.ndarray:
        """stereo (2, n) dry part plus the reverb of its mono sum."""
        n = stereo.shape[1]
        spec = self._spectrum(stereo.sum(0)) * (eq * np.float32(send))
        wet = np.stack([self._inverse(spec * self.ir_spec[c], n) for c in range(2)])
        return (stereo + wet).astype(np.float32)
