"""``stemsplit.Separator``: the Python API, and the one separation path the CLI also takes.

    sep = Separator()                          # the default model, loaded once
    stems = sep.separate(audio, 44100)         # {stem: (channels, samples) float32}
    sep.separate_file("song.mp3", "stems/")    # the files `stemsplit separate` writes

Arrays and files go through the same code (``separate_file.stem_blocks``: channel layout,
resampling to the model's rate and back, the chunked engine). Bad arguments raise one-line
``StemsplitError``s, the same as the CLI's (``SeparateError``, ``ConfigError``, ``AudioError``,
``CheckpointError``...).
"""
from __future__ import annotations

import logging
import numbers
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stemsplit.audio.convert import CLIP_MODES
from stemsplit.audio.io import audio_info, subtype_for
from stemsplit.pipelines.output_paths import (
    DEFAULT_TEMPLATE,
    SeparateError,
    check_template,
    plan_outputs,
    prepare_output_folder,
)
from stemsplit.pipelines.separate_file import (
    FileResult,
    StartedFile,
    output_names,
    separate_file,
    start_file,
    stem_blocks,
)
from stemsplit.resolver import Events, ResolvedModel, resolve
from stemsplit.separation.engine import Engine
from stemsplit.settings import EngineSettings

MAX_JOBS = 1024  # CPU threads; also checked by the CLI (stemsplit.cli.separate) before anything loads
_BLOCK_SECONDS = 1.0  # arrays are fed to the stream in blocks, as files are
log = logging.getLogger("stemsplit")


# --- checks shared with the CLI's batch (pipelines/separate.py) ------------------------------


def check_output_options(fmt: str, bits: int, clip: str, template: str) -> str:
    """The soundfile subtype for ``fmt``/``bits``, after checking the output options."""
    if clip not in CLIP_MODES:
        raise SeparateError(f"--clip {clip!r}: choose one of {', '.join(CLIP_MODES)}")
    subtype = subtype_for(fmt, bits)
    check_template(template)
    return subtype


def check_threads(threads: int | None) -> None:
    if threads is not None and (not _is_int(threads) or not 1 <= threads <= MAX_JOBS):
        raise SeparateError(f"--jobs {threads}: must be between 1 and {MAX_JOBS} CPU threads")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(name: str, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise SeparateError(f"{name} {value!r}: expected a number")
    return value


# --- the API ------------------------------------------------------------------------------


class Separator:
    """A loaded model that separates arrays and files into stems.

    ``model``: a shipped model's name, a checkpoint (.ckpt) or an exported .onnx path; None is
    the default model. ``runtime``: "auto" (ONNX Runtime when the model has an ONNX form and no
    GPU is asked for, else torch), "torch" or "onnx". The other arguments are the CLI's
    separation flags (None: the model's own setting); ``threads`` caps the CPU threads.

    The model is loaded once, in the constructor, and reused by every call. Calls are
    thread-safe: one lock serialises them, so threads share the model without interleaving
    (run separate processes, or ``--jobs``-style ``threads``, for parallel speed).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, runtime: str = "auto", device: str = "auto",
                 segment: float | None = None, overlap: float | None = None, shifts: int | None = None,
                 wiener_iterations: int | None = None, threads: int | None = None):
        if shifts is not None and not _is_int(shifts):
            raise SeparateError(f"--shifts {shifts!r}: expected a whole number")
        if wiener_iterations is not None and not _is_int(wiener_iterations):
            raise SeparateError(f"--wiener-iterations {wiener_iterations!r}: expected a whole number")
        if not isinstance(device, str) or not isinstance(runtime, str):
            raise SeparateError(f"device and runtime are names, e.g. device='cpu', runtime='onnx'; "
                                f"got {device!r}, {runtime!r}")
        settings = EngineSettings(segment_seconds=_number("--segment", segment), overlap=_number("--overlap", overlap),
                                  shifts=shifts, wiener_iterations=wiener_iterations, device=device)
        self._setup(None if model is None else os.fspath(model), runtime, settings, threads)

    @classmethod
    def from_settings(cls, model: str | None, settings: EngineSettings, runtime: str = "auto",
                      threads: int | None = None, events: Events | None = None) -> Separator:
        """The CLI's entry: its separation flags already gathered in ``EngineSettings``;
        ``events`` follows the download of a public model on first use (stemsplit.hub.fetch.FetchEvent)."""
        self = cls.__new__(cls)
        self._setup(model, runtime, settings, threads, events)
        return self

    def _setup(self, model: str | None, runtime: str, settings: EngineSettings, threads: int | None,
               events: Events | None = None) -> None:
        settings = settings.checked()
        check_threads(threads)
        self.model: ResolvedModel = resolve(model, runtime, settings.device, threads, events)
        self.runtime = self.model.runtime
        self._engine = Engine(self.model.runner, settings)
        self.model_name = self.model.name
        self._lock = threading.Lock()
        self._started: StartedFile | None = None  # the next file of a batch, started (write_stems' upcoming)

    # --- what the model is --------------------------------------------------------------

    @property
    def stems(self) -> list[str]:
        return list(self._engine.stems)

    @property
    def sample_rate(self) -> int:
        """The model's own rate; inputs at any rate are resampled to it and back."""
        return self._engine.sample_rate

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        return f"Separator({self.model_name!r}, runtime={self.runtime!r}, stems={self.stems})"

    # --- arrays -------------------------------------------------------------------------

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Stems of ``audio``: float (channels, samples) or (samples,) at ``sample_rate`` Hz.

        Returns {stem: (channels, samples) float32} at the input's rate and length: one channel
        for a mono or 1-D input, two otherwise (a file with more is separated on its first two).
        """
        x = _as_audio(audio)
        if not _is_int(sample_rate) or sample_rate <= 0:
            raise SeparateError(f"sample_rate {sample_rate!r}: expected a positive whole number of Hz")
        step = max(1024, int(sample_rate * _BLOCK_SECONDS))
        blocks = (x[:, i:i + step] for i in range(0, x.shape[-1], step))
        with self._lock:
            parts = [stems for _mix, stems in stem_blocks(blocks, int(sample_rate), x.shape[0], self._engine)]
        channels = min(x.shape[0], 2)
        out = (np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]) if parts else \
            np.zeros((len(self.stems), channels, 0), np.float32)
        return {stem: np.ascontiguousarray(out[i], dtype=np.float32) for i, stem in enumerate(self.stems)}

    # --- files --------------------------------------------------------------------------

    def separate_file(self, path: str | os.PathLike, out_dir: str | os.PathLike = "separated", *,
                      stems: list[str] | None = None, residual: bool = False, fmt: str = "wav", bits: int = 16,
                      clip: str = "rescale", filename: str = DEFAULT_TEMPLATE) -> dict[str, Path]:
        """Write the stems of the audio file ``path`` as ``stemsplit separate`` does; returns
        {output name: path}. Options as the CLI's flags (``fmt`` is --format); notes about
        clipping go to the ``stemsplit`` logger."""
        path, out_dir = Path(path), Path(out_dir)
        subtype = check_output_options(fmt, bits, clip, filename)
        chosen = self.check_stems(stems)
        prepare_output_folder(out_dir)
        targets = plan_outputs(out_dir, filename, path, self.model_name, fmt,
                               output_names(self.stems, chosen, residual))
        result = self.write_stems(path, targets, chosen, residual, subtype, clip)
        for text in result.messages:
            log.warning(text)
        return result.outputs

    def check_stems(self, stems: list[str] | None) -> list[str]:
        """The chosen stems (all when None), each one of the model's."""
        if isinstance(stems, str):
            stems = [s.strip() for s in stems.split(",") if s.strip()]
        chosen = list(stems) if stems else self.stems
        unknown = [s for s in chosen if s not in self.stems]
        if unknown:
            raise SeparateError(f"--stems: {unknown[0]!r} is not a stem of this model; "
                                f"it has: {', '.join(self.stems)}")
        return chosen

    def num_segments(self, path: Path) -> int:
        """Segments the engine will run for the file ``path`` (for progress bars)."""
        info = audio_info(path)
        return self._engine.num_segments(int(info.frames * self.sample_rate / max(info.sample_rate, 1)))

    def write_stems(self, path: Path, targets: dict[str, Path], chosen: list[str], residual: bool, subtype: str,
                    clip: str, on_segment: Callable[[int], None] | None = None,
                    upcoming: Path | None = None) -> FileResult:
        """One file's outputs (``targets``: output name -> final path), written atomically; raises AudioError.

        ``upcoming``: the file the next call will separate. It is started while this one's last segment
        is finished, so a batch of short files keeps the network busy between them."""
        with self._lock:
            started, self._started = self._started, None
            if started is not None and started.path != path:
                started.close()  # started for a file that was skipped after all
                started = None
            on_last = (lambda: self._start_next(upcoming)) if upcoming is not None else None
            return separate_file(path, self._engine, chosen, residual, targets, subtype, clip, on_segment,
                                 started, on_last)

    def _start_next(self, path: Path) -> None:
        """Start ``path`` (``start_file``). One that cannot be read is left for its own call, which
        then fails with its own message: nothing here may stop the file being finished now."""
        try:
            self._started = start_file(path, self._engine)
        except Exception:  # noqa: BLE001 - raised again, and reported, when that file's turn comes
            self._started = None


def _as_audio(audio) -> np.ndarray:
    """(channels, samples) float32 from a (channels, samples) or (samples,) real array."""
    try:
        x = np.asarray(audio)
    except Exception as exc:  # e.g. a GPU tensor or a ragged list
        raise SeparateError(f"audio: cannot be read as an array ({exc})") from None
    if x.dtype.kind not in "fiu":
        raise SeparateError(f"audio: expected real float samples, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise SeparateError(f"audio: expected shape (channels, samples) or (samples,), got {tuple(x.shape)}")
    if x.shape[0] > 16 and x.shape[1] <= 16:
        raise SeparateError(f"audio: shape {tuple(x.shape)} looks like (samples, channels); pass audio.T")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise SeparateError("audio: contains NaN or infinite samples")
    return x
