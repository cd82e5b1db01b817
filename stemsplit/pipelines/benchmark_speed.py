"""`stemsplit separate --benchmark`: this machine's separation speed for one model.

The speeds in ``--list-models`` were measured on the build machine; this measures the one the
user runs on. A generated stereo song (tones, a beat and noise; 60 s by default) is written to a
temporary wav file, then separated exactly as ``stemsplit separate`` separates a file: read,
resampled to the model's rate where needed, separated, and written as 16-bit wav stems. The
timed part is that whole file-to-stems pass; loading the model is timed on its own and not
included, so the figure is what a song costs once the model is loaded. Nothing is left on disk.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemsplit import pretrained
from stemsplit.audio.io import write_audio
from stemsplit.pipelines.separator import Separator
from stemsplit.settings import EngineSettings

BENCHMARK_SECONDS = 60.0
_SONG_RATE = 44100


@dataclass
class SpeedResult:
    model: str
    runtime: str
    audio_seconds: float
    separate_seconds: float  # reading, separating and writing the stems of the song
    load_seconds: float  # loading the model, not included in x_realtime
    cpu_seconds: float  # this process's CPU time (every thread) during the timed pass
    listed_x_realtime: float | None = None  # --list-models' figure for a shipped model (the build machine's)

    @property
    def x_realtime(self) -> float:
        return self.audio_seconds / max(self.separate_seconds, 1e-9)


def benchmark_song(seconds: float, sample_rate: int = _SONG_RATE, seed: int = 0) -> np.ndarray:
    """(2, samples) float32: two tones, a noise beat every half second and a little hiss, peaking at 0.9."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
    beat = 0.3 * np.exp(-30 * (t % 0.5)) * rng.standard_normal(t.size)
    song = np.stack([tone + beat, 0.8 * tone + beat]) + 0.02 * rng.standard_normal((2, t.size))
    return (song * (0.9 / max(float(np.abs(song).max()), 1e-9))).astype(np.float32)


def measure_speed(model: str | None = None, settings: EngineSettings | None = None, runtime: str = "auto",
                  threads: int | None = None, seconds: float = BENCHMARK_SECONDS) -> SpeedResult:
    """Load ``model`` (None: the default) and time one file-to-stems pass over a generated song."""
    start = time.perf_counter()
    separator = Separator.from_settings(model, settings or EngineSettings(), runtime, threads)
    load = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="stemsplit-benchmark-") as tmp:
        song = write_audio(Path(tmp) / "song.wav", benchmark_song(seconds), _SONG_RATE, "PCM_16")
        targets = {stem: Path(tmp) / "stems" / f"{stem}.wav" for stem in separator.stems}
        cpu, start = time.process_time(), time.perf_counter()
        separator.write_stems(song, targets, separator.stems, False, "PCM_16", "rescale")
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    listed = pretrained.registry().get("models", {}).get(separator.model_name, {}).get("speed_x_realtime")
    return SpeedResult(separator.model_name, separator.runtime, seconds, elapsed, load, cpu, listed)
