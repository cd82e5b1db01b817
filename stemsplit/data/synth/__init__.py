"""The built-in song generator: procedural multitracks for ``stemsplit prepare synth``.

``plan`` writes the score (tempo, key, chords, drum hits, melody), ``instruments`` and
``voice`` play it, ``room`` places each part in one shared stereo space, and ``song`` puts
the four stems together. A song depends on (seed, index, seconds, sample rate) only.
"""
from stemsplit.data.synth.song import GENERATOR_VERSION, SYNTH_STEMS, SynthSong, generate_song

__all__ = ["GENERATOR_VERSION", "SYNTH_STEMS", "SynthSong", "generate_song"]
