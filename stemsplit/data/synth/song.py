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

from stemsplit.data.synth.instruments import BASS_STYLES, CHORD_STYLES, chord_notes, render_drums, render_notes
from stemsplit.data.synth.plan import bass_notes, drum_hits, make_plan, melody
from stemsplit.data.synth.room import Room
from stemsplit.data.synth.voice import render_voice

SYNTH_STEMS = ["vocals", "drums", "bass", "other"]
GENERATOR_VERSION = 1  # bump when the sound of a given seed changes


@dataclass
class SynthSong:
    stems: dict[str, np.ndarray]  # stem -> (2, time) float32
    mixture: np.ndarray  # (2, time) float32, the exact sum of the stems
    info: dict  # tempo, key, styles: what the song is made of


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
