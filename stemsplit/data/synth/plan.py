"""The score of a generated song: tempo, key, chord progression, sections, drum hits and melody.

Everything the instruments play comes from one ``SongPlan``, so the stems share a tempo, a
key and a harmony the way a real multitrack does. Times are in seconds, pitches in MIDI notes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# progressions as 0-based scale degrees, one chord per bar
PROGRESSIONS = {
    "major": [[0, 4, 5, 3], [0, 5, 3, 4], [1, 4, 0, 0], [0, 3, 4, 3], [0, 3, 0, 4], [5, 3, 0, 4]],
    "minor": [[0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 6], [0, 5, 3, 4], [0, 3, 6, 2]],
}
# 16-step drum grids per style: (kick, snare, hat) steps
DRUM_STYLES = {
    "rock": ([0, 8], [4, 12], list(range(0, 16, 2))),
    "four_on_floor": ([0, 4, 8, 12], [4, 12], [2, 6, 10, 14]),
    "halftime": ([0, 10], [8], list(range(0, 16, 2))),
    "breakbeat": ([0, 10], [4, 12], list(range(16))),
    "shuffle": ([0, 6, 8], [4, 12], [0, 3, 4, 7, 8, 11, 12, 15]),
}


@dataclass
class Chord:
    start: float
    duration: float
    root: int  # MIDI note of the chord root, octave 3 (48-59)
    notes: list[int]  # MIDI notes of the voicing


@dataclass
class Note:
    start: float
    duration: float
    pitch: float  # MIDI, may be fractional (detune)
    velocity: float = 1.0
    vowel: int = 0  # index into the vowel table (vocals only)


@dataclass
class DrumHit:
    time: float
    kind: str  # kick | snare | hat | open_hat | crash
    velocity: float


@dataclass
class SongPlan:
    tempo: float
    beat: float  # seconds per beat
    key: int  # tonic pitch class + 48
    minor: bool
    scale: np.ndarray
    bars: int
    seconds: float
    chords: list[Chord]
    sections: list[str]  # per bar: intro | verse | chorus | break
    swing: float  # delay of off-beat 16ths, in 16ths
    drum_style: str
    extra: dict = field(default_factory=dict)

    @property
    def bar(self) -> float:
        return 4 * self.beat


def scale_pitch(plan: SongPlan, degree: int) -> int:
    """MIDI pitch of a scale degree (any integer, octaves wrap) above the key."""
    octave, step = divmod(degree, 7)
    return int(plan.key + 12 * octave + plan.scale[step])


def make_plan(rng: np.random.Generator, seconds: float) -> SongPlan:
    tempo = float(rng.uniform(78, 140))
    beat = 60.0 / tempo
    minor = bool(rng.random() < 0.5)
    scale = MINOR if minor else MAJOR
    key = 48 + int(rng.integers(0, 12))
    bars = int(np.ceil(seconds / (4 * beat))) + 1
    progression = PROGRESSIONS["minor" if minor else "major"]
    degrees = progression[int(rng.integers(len(progression)))]
    sevenths = rng.random() < 0.3
    sections = []
    for b in range(bars):
        if bars >= 8 and b < 2:
            sections.append("intro")
        else:
            sections.append("chorus" if (b // 4) % 2 == 1 else "verse")
    if bars >= 12 and rng.random() < 0.5:  # a two-bar breakdown with no drums
        start = 4 * int(rng.integers(2, bars // 4)) - 2
        sections[start:start + 2] = ["break", "break"]
    plan = SongPlan(tempo, beat, key, minor, scale, bars, seconds, [], sections,
                    swing=float(rng.choice([0.0, 0.0, 0.15, 0.3])),
                    drum_style=str(rng.choice(list(DRUM_STYLES))))
    for b in range(bars):
        d = degrees[b % len(degrees)]
        notes = [scale_pitch(plan, d + i) for i in ((0, 2, 4, 6) if sevenths else (0, 2, 4))]
        if rng.random() < 0.5:  # inversion: move the lowest note up an octave
            notes = notes[1:] + [notes[0] + 12]
        plan.chords.append(Chord(b * plan.bar, plan.bar, scale_pitch(plan, d), notes))
    return plan


def _step_time(plan: SongPlan, bar: int, step: int) -> float:
    swing = plan.swing if step % 2 else 0.0
    return bar * plan.bar + (step + swing) * plan.beat / 4


def drum_hits(plan: SongPlan, rng: np.random.Generator) -> list[DrumHit]:
    kicks, snares, hats = DRUM_STYLES[plan.drum_style]
    hits: list[DrumHit] = []
    jitter = lambda: float(rng.normal(0, 0.004))  # noqa: E731  (a drummer is never exact)
    for bar, section in enumerate(plan.sections):
        if section == "break":
            continue
        fill = bar % 4 == 3 and rng.random() < 0.6
        if bar % 4 == 0 and section != "intro" and rng.random() < 0.7:
            hits.append(DrumHit(_step_time(plan, bar, 0), "crash", 0.8))
        for step in range(16):
            t = _step_time(plan, bar, step) + jitter()
            if fill and step >= 12:
                hits.append(DrumHit(t, "snare", 0.5 + 0.1 * (step - 11)))
                continue
            if step in kicks or (rng.random() < 0.06 and step % 2 == 0):
                hits.append(DrumHit(t, "kick", float(rng.uniform(0.85, 1.0))))
            if section != "intro" and step in snares:
                hits.append(DrumHit(t, "snare", float(rng.uniform(0.85, 1.0))))
            elif section != "intro" and rng.random() < 0.05:
                hits.append(DrumHit(t, "snare", float(rng.uniform(0.2, 0.35))))  # ghost note
            busy = section == "chorus" and plan.drum_style in ("rock", "halftime")
            if step in hats or (busy and step % 2 == 1):
                open_hat = step % 4 == 2 and rng.random() < 0.15
                accent = 1.0 if step % 4 == 0 else 0.7
                hits.append(DrumHit(t, "open_hat" if open_hat else "hat", accent * float(rng.uniform(0.6, 1.0))))
    return [h for h in hits if 0 <= h.time < plan.seconds]


def bass_notes(plan: SongPlan, rng: np.random.Generator) -> list[Note]:
    style = int(rng.integers(4))
    notes = []
    for bar, chord in enumerate(plan.chords):
        root = chord.root
        while root > 45:  # bass register: about A#1 to A2
            root -= 12
        b = plan.beat
        if style == 0:  # whole notes with a pickup
            pattern = [(0, 3.5, root), (3.5, 0.5, root + 7)]
        elif style == 1:  # driving eighths
            pattern = [(i * 0.5, 0.45, root + (12 if i == 6 else 0)) for i in range(8)]
        elif style == 2:  # root, fifth, octave
            pattern = [(0, 1.5, root), (1.5, 1.0, root + 7), (2.5, 1.0, root + 12), (3.5, 0.5, root + 7)]
        else:  # syncopated
            pattern = [(0, 0.75, root), (0.75, 0.75, root), (2.0, 0.5, root + 10), (2.5, 1.5, root)]
        if plan.sections[bar] == "intro" and rng.random() < 0.5:
            continue
        for start, dur, pitch in pattern:
            notes.append(Note(chord.start + start * b, dur * b * 0.95, float(pitch), float(rng.uniform(0.8, 1.0))))
    return [n for n in notes if n.start < plan.seconds]


def melody(plan: SongPlan, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    """A sung line: two-bar phrases with rests between them, chord tones on strong beats."""
    scale_pitches = [p for p in range(low - 12, high + 12) if (p - plan.key) % 12 in plan.scale]
    pool = [p for p in scale_pitches if low <= p <= high]
    current = pool[len(pool) // 2]
    notes: list[Note] = []
    durations = np.array([0.5, 1.0, 1.5, 2.0])
    for phrase_start in range(0, plan.bars, 2):
        if plan.sections[phrase_start] in ("intro", "break") or (notes and rng.random() < 0.15):
            continue
        lift = 3 if plan.sections[phrase_start] == "chorus" else 0
        t = float(rng.choice([0.0, 0.5, 1.0]))
        end = 8.0 - float(rng.choice([1.0, 1.5, 2.0]))  # leave a breath before the next phrase
        vowel = int(rng.integers(5))
        while t < end:
            dur = float(min(rng.choice(durations, p=[0.35, 0.35, 0.15, 0.15]), end - t))
            bar = min(phrase_start + int(t // 4), plan.bars - 1)
            chord_pcs = {n % 12 for n in plan.chords[bar].notes}
            step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
            idx = int(np.clip(pool.index(current) + step + (lift if t == 0 else 0), 0, len(pool) - 1))
            if t % 1.0 == 0:  # strong beats land on a chord tone
                tones = [i for i, p in enumerate(pool) if p % 12 in chord_pcs]
                idx = min(tones, key=lambda i: abs(i - idx))
            current = pool[idx]
            if rng.random() < 0.4:
                vowel = int(rng.integers(5))
            start = plan.chords[phrase_start].start + t * plan.beat
            notes.append(Note(start, dur * plan.beat, float(current), float(rng.uniform(0.75, 1.0)), vowel))
            t += dur
    return [n for n in notes if n.start < plan.seconds]
