"""A sung voice: a harmonic glottal source shaped by vowel formants, with glides and vibrato.

Each phrase is synthesised additively. Pitch, loudness and the three formant frequencies are
planned at a control rate (every ``HOP`` samples) and interpolated; harmonic ``k`` gets the
amplitude of the vowel's spectral envelope at ``k * f0``, so the vowel colour stays put while the
pitch moves (which is what makes it sound sung rather than like a filtered synth). Short noise
bursts at some phrase and note onsets stand in for consonants; a little breath noise follows
the loudness.
"""
from __future__ import annotations

import numpy as np

from stemsplit.data.synth.instruments import midi_hz
from stemsplit.data.synth.plan import Note

HOP = 64
# formant frequencies (Hz) of the vowels a, e, i, o, u for an adult male voice
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010],
                   [570, 840, 2410], [300, 870, 2240]], dtype=np.float64)
BANDWIDTHS = np.array([80.0, 100.0, 160.0])
FORMANT_GAINS = np.array([1.0, 0.7, 0.4])


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along axis 0 (edges held), for glides and vowel transitions."""
    if width <= 1:
        return x
    pad = [(width, width)] + [(0, 0)] * (x.ndim - 1)
    padded = np.pad(x, pad, mode="edge")
    c = np.cumsum(padded, axis=0)
    out = (c[width:] - c[:-width]) / width
    start = width // 2
    return out[start:start + x.shape[0]]


def _upsample(control: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of a control-rate curve (one value per HOP samples) to n samples."""
    w = (np.arange(HOP, dtype=np.float32) / HOP)[None, :]
    c = control.astype(np.float32)
    return (c[:-1, None] * (1 - w) + c[1:, None] * w).ravel()[:n]


def _phrases(notes: list[Note], gap: float = 0.12) -> list[list[Note]]:
    phrases: list[list[Note]] = []
    for note in sorted(notes, key=lambda n: n.start):
        if phrases and note.start - (phrases[-1][-1].start + phrases[-1][-1].duration) < gap:
            phrases[-1].append(note)
        else:
            phrases.append([note])
    return phrases


def _highpassed_noise(rng: np.random.Generator, n: int, order: int = 2) -> np.ndarray:
    """White noise differenced ``order`` times: a +6 dB/octave tilt per order (hiss, not rumble)."""
    out = np.diff(rng.standard_normal(n + order), n=order)
    return (out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def render_voice(notes: list[Note], n_total: int, sr: int, rng: np.random.Generator,
                 female: bool) -> np.ndarray:
    """Mono (n_total,) float32 vocal line for ``notes``."""
    out = np.zeros(n_total, dtype=np.float32)
    formant_scale = 1.17 if female else 1.0
    vib_rate, vib_depth = rng.uniform(4.8, 6.5), rng.uniform(20, 60)  # Hz, cents
    glide = int(rng.uniform(0.03, 0.08) * sr / HOP)
    attack = max(2, int(0.03 * sr / HOP))
    for phrase in _phrases(notes):
        start = max(0.0, phrase[0].start - 0.03)
        end = min(n_total / sr, phrase[-1].start + phrase[-1].duration + 0.15)
        i0, n = int(start * sr), int((end - start) * sr)
        if n < 4 * HOP:
            continue
        nc = n // HOP + 2
        tc = start + np.arange(nc) * HOP / sr
        pitch = np.full(nc, np.nan)
        gate = np.zeros(nc)
        vowel = np.zeros(nc, dtype=np.int64)
        since = np.zeros(nc)
        for note in phrase:
            on = (tc >= note.start) & (tc < note.start + note.duration)
            pitch[on], gate[on], vowel[on], since[on] = note.pitch, note.velocity, note.vowel, tc[on] - note.start
        known = np.flatnonzero(~np.isnan(pitch))
        pitch = np.interp(np.arange(nc), known, pitch[known])  # hold pitch through gaps
        pitch = _smooth(pitch, glide)
        ramp = np.clip((since - 0.15) / 0.25, 0.0, 1.0)
        drift = _smooth(rng.normal(0, 8, nc), max(1, int(0.2 * sr / HOP)))
        cents = vib_depth * ramp * np.sin(2 * np.pi * vib_rate * tc + rng.uniform(0, 6)) + drift
        f0c = midi_hz(pitch + cents / 100.0)
        amp = _smooth(gate, attack)
        formants = _smooth(VOWELS[vowel] * formant_scale, max(1, int(0.06 * sr / HOP)))
        f0 = _upsample(f0c, n).astype(np.float64)
        phase = np.cumsum(f0) / sr
        seg = np.zeros(n, dtype=np.float32)
        top = min(0.45 * sr, 8000.0)
        theta = (2 * np.pi * (phase % 1.0)).astype(np.float32)
        # sin(k theta) by the Chebyshev recurrence: two passes per harmonic instead of a sin()
        twice_cos, sin_prev, sin_k = 2 * np.cos(theta), np.zeros(n, np.float32), np.sin(theta)
        for k in range(1, min(64, int(top / f0c.min())) + 1):
            fk = k * f0c
            env = (FORMANT_GAINS / (1 + ((fk[:, None] - formants) / BANDWIDTHS) ** 2)).sum(1) + 0.01
            a = amp * env * k ** -0.6 * (fk < top)
            if a.max() >= 1e-4:
                seg += _upsample(a, n) * sin_k
            sin_prev, sin_k = sin_k, twice_cos * sin_k - sin_prev
        seg += 0.02 * _upsample(amp, n) * _highpassed_noise(rng, n)  # breath
        for j, note in enumerate(phrase):  # consonants: at the phrase start, then now and then
            if j == 0 or rng.random() < 0.25:
                length = int(rng.uniform(0.02, 0.06) * sr)
                burst = _highpassed_noise(rng, length, order=int(rng.integers(2, 5)))
                burst *= np.hanning(length).astype(np.float32) * rng.uniform(0.05, 0.15)
                k0 = int((note.start - start) * sr)
                seg[k0:k0 + length] += burst[: max(0, min(length, n - k0))]
        out[i0:i0 + n] += seg[: n_total - i0]
    return out
