"""The generator's instruments: wavetable oscillators for bass and chords, a synthesised kit.

Every renderer returns float32 mono ``(time,)`` (drums: stereo ``(2, time)``) at ``sr``.
Oscillators read a band-limited single-cycle table (harmonics kept under 0.45 * sr), so the
cost per sample does not grow with the number of harmonics; bright-to-dull decays cross-fade
two tables. Notes are rendered over their own span only and added into the track.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from stemsplit.data.synth.plan import Chord, DrumHit, Note, SongPlan

TABLE = 2048


def midi_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch) - 69.0) / 12.0)


# --- harmonic spectra of the timbres -------------------------------------------------------------
K = np.arange(1, 65, dtype=np.float64)


def _partials(levels: dict[int, float]) -> np.ndarray:
    out = np.zeros(K.size)
    for k, level in levels.items():
        out[k - 1] = level
    return out


SPECTRA = {
    "saw": 1.0 / K,
    "square": np.where(K % 2 == 1, 1.0 / K, 0.0),
    "soft": 1.0 / K ** 2,
    "organ": _partials({1: 1.0, 2: 0.8, 3: 0.6, 4: 0.5, 6: 0.3, 8: 0.25}),
    "bell": _partials({1: 1.0, 2: 0.5, 3: 0.25, 4: 0.12}),
}


def _dull(spectrum: np.ndarray, cutoff: float) -> np.ndarray:
    return spectrum / (1.0 + (K / cutoff) ** 4)


@lru_cache(maxsize=512)
def _table_cached(timbre: str, brightness: float, n: int) -> np.ndarray:
    amps = _dull(SPECTRA[timbre], brightness)[:n]
    spec = np.zeros(TABLE // 2 + 1, dtype=np.complex128)
    spec[1:n + 1] = -0.5j * TABLE * amps  # irfft of this is sum_k amps[k] sin(2 pi k x)
    wave = np.fft.irfft(spec, TABLE)
    wave = np.append(wave, wave[0]) / max(np.abs(wave).max(), 1e-9)
    return wave.astype(np.float32)


def table(timbre: str, brightness: float, freq: float, sr: int) -> np.ndarray:
    """One cycle (TABLE + 1 samples, wrapped) of a timbre's harmonics, cut at 0.45 * sr."""
    n = max(1, min(K.size, TABLE // 2 - 1, int(0.45 * sr / max(freq, 1.0))))
    return _table_cached(timbre, float(brightness), n)


def oscillate(tab: np.ndarray, freq: float | np.ndarray, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """n samples of a table at ``freq`` Hz (scalar or per-sample array), linear interpolation."""
    if np.isscalar(freq):
        pos = np.arange(n, dtype=np.float64)
        pos *= freq * TABLE / sr
        pos += phase0 * TABLE
    else:
        pos = np.cumsum(freq, dtype=np.float64) * (TABLE / sr) + phase0 * TABLE
    np.remainder(pos, TABLE, out=pos)
    i = pos.astype(np.int32)
    frac = (pos - i).astype(np.float32)
    lo = tab[i]
    return lo + (tab[i + 1] - lo) * frac


def envelope(n: int, sr: int, attack: float, release: float, decay: float = 0.0) -> np.ndarray:
    """Attack ramp, optional exponential decay (time constant ``decay`` s), release ramp at the end."""
    t = np.arange(n, dtype=np.float32) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay > 0:
        env *= np.exp(-t / decay)
    rel = max(1, int(release * sr))
    if n > 1:
        env[-rel:] *= np.linspace(1.0, 0.0, min(rel, n), dtype=np.float32)
    return env.astype(np.float32)


def _add(out: np.ndarray, start: float, sound: np.ndarray, sr: int) -> None:
    i = int(round(start * sr))
    if i >= out.shape[-1] or i + sound.shape[-1] <= 0:
        return
    lo = max(0, -i)
    hi = min(sound.shape[-1], out.shape[-1] - i)
    out[..., i + lo:i + hi] += sound[..., lo:hi]


def render_notes(notes: list[Note], n_total: int, sr: int, timbre: str, *, attack: float, release: float,
                 decay: float = 0.0, bright_decay: float = 0.0, detune_cents: float = 0.0,
                 voices: int = 1, brightness: float = 16.0) -> np.ndarray:
    """Mono (n_total,) sum of notes on one oscillator timbre. ``bright_decay`` > 0 fades each note
    from its bright to its dull table with that time constant (plucked strings, bass, keys)."""
    out = np.zeros(n_total, dtype=np.float32)
    dull = max(1.5, brightness / 6)
    for note in notes:
        n = int((note.duration + release) * sr)
        if n <= 1:
            continue
        f = float(midi_hz(note.pitch))
        bright_tab = table(timbre, brightness, f, sr)
        dull_tab = table(timbre, dull, f, sr) if bright_decay > 0 else None
        fade = np.exp(-np.arange(n, dtype=np.float32) / (bright_decay * sr)) if bright_decay > 0 else None
        wave = np.zeros(n, dtype=np.float32)
        for v in range(voices):
            cents = detune_cents * (2 * v / (voices - 1) - 1) if voices > 1 else 0.0  # spread +-detune
            fv = f * 2 ** (cents / 1200)
            bright = oscillate(bright_tab, fv, n, sr, phase0=v * 0.37)
            if fade is None:
                wave += bright
            else:
                wave += fade * bright + (1 - fade) * oscillate(dull_tab, fv, n, sr, phase0=v * 0.37)
        wave *= envelope(n, sr, attack, release, decay) * (note.velocity / voices)
        _add(out, note.start, wave, sr)
    return out


def chord_notes(plan: SongPlan, rng: np.random.Generator, style: str) -> list[Note]:
    """How the chord instrument plays each bar: held (pad), stabs (keys) or an arpeggio (pluck)."""
    notes = []
    b = plan.beat
    rhythm = [(0, 1.5), (1.5, 1.0), (2.5, 1.5)] if rng.random() < 0.5 else [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)]
    arp_step = float(rng.choice([0.5, 0.25])) if style == "pluck" else 0.5
    for bar, chord in enumerate(plan.chords):
        if plan.sections[bar] == "break" and style != "pad":
            continue
        if style == "pad" or style == "organ":
            notes += [Note(chord.start, chord.duration, p, 0.8) for p in chord.notes]
        elif style == "keys":
            for start, dur in rhythm:
                notes += [Note(chord.start + start * b, dur * b * 0.9, p, float(rng.uniform(0.6, 0.9)))
                          for p in chord.notes]
        else:  # arpeggiated plucked strings, an octave up
            order = chord.notes + [chord.notes[0] + 12]
            for i in range(int(4 / arp_step)):
                p = order[i % len(order)] + 12 * (rng.random() < 0.1)
                notes.append(Note(chord.start + i * arp_step * b, arp_step * b * 1.5, p, float(rng.uniform(0.6, 1.0))))
    return [n for n in notes if n.start < plan.seconds]


CHORD_STYLES = {  # style -> (timbre, render_notes keyword arguments)
    "pad": ("saw", dict(attack=0.4, release=0.4, detune_cents=12, voices=3, brightness=6)),
    "organ": ("organ", dict(attack=0.02, release=0.08, brightness=32)),
    "keys": ("bell", dict(attack=0.005, release=0.15, decay=0.9, bright_decay=0.25, brightness=32)),
    "pluck": ("saw", dict(attack=0.003, release=0.1, decay=0.35, bright_decay=0.08, brightness=24)),
}
BASS_STYLES = {
    "synth": ("saw", dict(attack=0.005, release=0.03, bright_decay=0.12, brightness=10)),
    "square": ("square", dict(attack=0.005, release=0.03, bright_decay=0.2, brightness=8)),
    "plucked": ("saw", dict(attack=0.002, release=0.05, decay=0.6, bright_decay=0.05, brightness=20)),
    "sub": ("soft", dict(attack=0.01, release=0.05, brightness=6)),
}


# --- drums ----------------------------------------------------------------------------------------
def _noise_band(rng: np.random.Generator, n: int, low: float, high: float, sr: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n).astype(np.float32))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < low) | (f > high)] = 0
    out = np.fft.irfft(spec, n).astype(np.float32)
    return out / max(np.abs(out).max(), 1e-9)


def drum_kit(rng: np.random.Generator, sr: int) -> dict[str, list[np.ndarray]]:
    """A few variants of each drum sound (so repeated hits are not identical copies)."""
    kit: dict[str, list[np.ndarray]] = {}
    t = np.arange(int(0.5 * sr), dtype=np.float32) / sr
    f_hi, f_lo, tau = rng.uniform(110, 180), rng.uniform(42, 60), rng.uniform(0.025, 0.06)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / tau)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / rng.uniform(0.15, 0.35))
    click = np.zeros_like(t)
    click[: int(0.003 * sr)] = 0.4
    kit["kick"] = [np.tanh(1.5 * (body + click)).astype(np.float32)]
    st = t[: int(0.35 * sr)]
    tone = np.sin(2 * np.pi * rng.uniform(170, 240) * st) * np.exp(-st / 0.05)
    kit["snare"] = [(0.5 * tone + _noise_band(rng, st.size, 1500, 9000, sr) * np.exp(-st / rng.uniform(0.06, 0.14)))
                    .astype(np.float32) for _ in range(3)]
    ht = t[: int(0.12 * sr)]
    kit["hat"] = [(_noise_band(rng, ht.size, 6500, 16000, sr) * np.exp(-ht / rng.uniform(0.015, 0.035)))
                  .astype(np.float32) for _ in range(4)]
    ot = np.arange(int(0.6 * sr), dtype=np.float32) / sr
    kit["open_hat"] = [(_noise_band(rng, ot.size, 6000, 16000, sr) * np.exp(-ot / 0.18)).astype(np.float32)]
    ct = np.arange(int(2.0 * sr), dtype=np.float32) / sr
    kit["crash"] = [(0.6 * _noise_band(rng, ct.size, 4000, 16000, sr) * np.exp(-ct / 0.7)).astype(np.float32)]
    return kit


def render_drums(hits: list[DrumHit], n_total: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo (2, n_total): kick and snare in the centre, cymbals spread left and right."""
    kit = drum_kit(rng, sr)
    hat_pan, crash_pan = rng.uniform(-0.6, 0.6), rng.uniform(-0.7, 0.7)
    pans = {"kick": 0.0, "snare": rng.uniform(-0.1, 0.1), "hat": hat_pan, "open_hat": hat_pan, "crash": crash_pan}
    levels = {"kick": 1.0, "snare": 0.8, "hat": 0.25, "open_hat": 0.25, "crash": 0.3}
    out = np.zeros((2, n_total), dtype=np.float32)
    for hit in hits:
        variants = kit[hit.kind]
        sound = variants[int(rng.integers(len(variants)))] * (hit.velocity * levels[hit.kind])
        theta = (pans[hit.kind] + 1) * np.pi / 4
        gains = np.array([np.cos(theta), np.sin(theta)], dtype=np.float32)[:, None]
        _add(out, hit.time, gains * sound[None, :], sr)
    return out


__all__ = ["Chord", "render_notes", "render_drums", "chord_notes", "CHORD_STYLES", "BASS_STYLES", "midi_hz",
           "oscillate", "envelope", "table"]
