"""The built-in multitrack generator: procedural songs with vocals, drums, bass and other stems.

A song is a ``SongPlan`` (tempo, key, chord progression, sections) played by four parts:
drums (synthesised kick, snare, hi-hats and crashes on a style's pattern with fills, ghost
notes and timing jitter), bass (synth, square, plucked or sub lines on the chord roots),
other (one or two of pad, organ, keys and arpeggiated plucked strings) and vocals (a sung
melody in phrases, with formants, vowel changes, vibrato and glides). Each part gets its own
level, pan, EQ and a send to one shared stereo reverb (vocals also get a tempo-synced echo),
all applied as one FFT-domain filter per part. Everything is drawn from
``numpy.random.default_rng([seed, index])``, so a song depends on (seed, index, seconds,
sample rate) only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemsplit.data.synth_instruments import BASS_STYLES, CHORD_STYLES, chord_notes, render_drums, render_notes
from stemsplit.data.synth_plan import bass_notes, drum_hits, make_plan, melody
from stemsplit.data.synth_voice import render_voice

SYNTH_STEMS = ["vocals", "drums", "bass", "other"]
GENERATOR_VERSION = 1  # bump when the sound of a given seed changes


@dataclass
class SynthSong:
    stems: dict[str, np.ndarray]  # stem -> (2, time) float32
    mixture: np.ndarray  # (2, time) float32, the exact sum of the stems
    info: dict  # tempo, key, styles: what the song is made of


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


def generate_song(seed: int, index: int, seconds: float, sample_rate: int = 44100) -> SynthSong:
    """One song of ``seconds`` at ``sample_rate``: four stereo stems and their sum."""
    rng = np.random.default_rng([GENERATOR_VERSION, seed, index])
    sr = int(sample_rate)
    n = max(1, int(round(seconds * sr)))
    plan = make_plan(rng, seconds)
    room = Room(rng, n, sr)
    pick = lambda options: str(options[int(rng.integers(len(options)))])  # noqa: E731

    drums = render_drums(drum_hits(plan, rng), n, sr, rng)
    drums = room.tail(drums, float(rng.uniform(0.05, 0.3)), room.eq(30, 16000))

    bass_style = pick(list(BASS_STYLES))
    timbre, kwargs = BASS_STYLES[bass_style]
    bass = render_notes(bass_notes(plan, rng), n, sr, timbre, **kwargs)
    drive = float(rng.uniform(1.0, 3.0))
    bass = np.tanh(drive * bass) / drive
    bass = room.place(bass, float(rng.uniform(-0.1, 0.1)), float(rng.uniform(0.0, 0.1)),
                      room.eq(35, float(rng.uniform(1500, 5000))))

    other_styles = list(rng.choice(list(CHORD_STYLES), size=int(rng.integers(1, 3)), replace=False))
    other = np.zeros((2, n), dtype=np.float32)
    for style in other_styles:
        timbre, kwargs = CHORD_STYLES[style]
        part = render_notes(chord_notes(plan, rng, style), n, sr, timbre, **kwargs)
        part /= max(np.abs(part).max(), 1e-6)
        other += room.place(part, float(rng.uniform(-0.7, 0.7)), float(rng.uniform(0.1, 0.5)),
                            room.eq(120, float(rng.uniform(4000, 12000))))

    female = bool(rng.random() < 0.5)
    low = int(rng.integers(57, 62)) if female else int(rng.integers(47, 52))
    vocals = render_voice(melody(plan, rng, low, low + 14), n, sr, rng, female)
    echo = (0.75 * plan.beat, float(rng.uniform(0.15, 0.35))) if rng.random() < 0.5 else None
    vocals = room.place(vocals, float(rng.uniform(-0.15, 0.15)), float(rng.uniform(0.1, 0.4)),
                        room.eq(150, 14000), echo)

    stems = {"vocals": vocals, "drums": drums, "bass": bass, "other": other}
    levels_db = {"vocals": 0.0, "drums": -1.0, "bass": -3.0, "other": -4.0}
    for name in stems:  # each part normalised by its loudness, then set to a random level
        rms = float(np.sqrt(np.mean(stems[name] ** 2)))
        gain_db = levels_db[name] + rng.uniform(-4.0, 4.0)
        stems[name] = (stems[name] * (10 ** (gain_db / 20) / max(rms, 1e-6))).astype(np.float32)
    mixture = sum(stems.values())
    peak = float(np.abs(mixture).max())
    scale = float(rng.uniform(0.5, 0.9)) / max(peak, 1e-6)
    stems = {k: (v * scale).astype(np.float32) for k, v in stems.items()}
    mixture = np.sum([stems[s] for s in SYNTH_STEMS], axis=0, dtype=np.float32)
    info = {"tempo": round(plan.tempo, 2), "key": int(plan.key % 12), "minor": plan.minor,
            "drums": plan.drum_style, "bass": bass_style, "other": other_styles,
            "voice": "female" if female else "male", "reverb_rt60": round(room.rt60, 2)}
    return SynthSong(stems, mixture, info)
