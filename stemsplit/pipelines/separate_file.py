"""Separate one audio file into stem files, streaming, in bounded memory.

    file blocks (input rate) -> channel layout -> resample to model rate -> chunked engine
      -> resample back -> channel layout of the input -> clip protection -> output files
      (renamed into place only when complete; a float32 scratch file first for a stem that
      --clip rescale must scale down)

Partial and scratch files carry stemsplit's temporary names (``stemsplit.atomic``) and are
removed on every exit path: success, a bad file, a full disk, SIGTERM (which the CLI turns into
an exception so that these ``finally`` blocks run).

Only a few segments of audio are in memory at any time, whatever the file's length. All numpy: the
network runs behind the engine's ``NetworkRunner`` (torch or ONNX Runtime). In a batch the next
file is started, its first segment in the network, just before the current file's last segment is
finished (``start_file``, ``Engine.start_input``): the network does not wait between files.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemsplit.atomic import remove_own_temps
from stemsplit.audio.convert import StreamingResampler, to_model_channels, to_output_channels
from stemsplit.audio.io import AudioError, AudioInfo, audio_info, iter_blocks
from stemsplit.audio.stem_writer import ClipSafeWriter
from stemsplit.separation.engine import Engine, StartedInput

BLOCK_SECONDS = 1.0


@dataclass
class FileResult:
    path: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    duration: float = 0.0
    messages: list[str] = field(default_factory=list)


def output_names(model_stems: list[str], chosen: list[str], residual: bool) -> list[str]:
    """The stems written, plus ``no_<stem>`` (one stem chosen) or ``accompaniment`` for --residual."""
    names = list(chosen)
    if residual:
        names.append(f"no_{chosen[0]}" if len(chosen) == 1 else "accompaniment")
    return names


class _InputFifo:
    """Input samples (output channel layout) waiting for their separated counterparts."""

    def __init__(self) -> None:
        self._blocks: deque[np.ndarray] = deque()

    def push(self, block: np.ndarray) -> None:
        self._blocks.append(block)

    def pop(self, n: int) -> np.ndarray:
        parts, need = [], n
        while need > 0 and self._blocks:
            head = self._blocks[0]
            take = head[:, :need]
            parts.append(take)
            need -= take.shape[-1]
            if take.shape[-1] == head.shape[-1]:
                self._blocks.popleft()
            else:
                self._blocks[0] = head[:, take.shape[-1]:]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


class StemStream:
    """The separation stream of one input at its own rate and layout, for files and arrays alike.

    blocks: (in_channels, n) float32 at ``sample_rate``. ``pairs()`` yields aligned pairs (mix (C, m),
    stems (S, C, m)), C = 1 for a mono input and 2 otherwise (the first two channels), until every
    input sample has its stems: resampling's rounding is trimmed or padded with silence.
    ``on_end(samples_read)`` runs once the input is exhausted, before its tail is separated.
    ``start()`` reads the input up to its first segment and puts that in the network before
    ``pairs()`` is asked for (``Engine.start_input``); ``close()`` releases an input left unread.
    """

    def __init__(self, blocks: Iterable[np.ndarray], sample_rate: int, in_channels: int, engine: Engine,
                 on_end: Callable[[int], None] | None = None):
        self.engine = engine
        self.out_channels = min(in_channels, 2)
        self._up = StreamingResampler(sample_rate, engine.sample_rate)
        self._down = StreamingResampler(engine.sample_rate, sample_rate)
        self._fifo = _InputFifo()
        self._counts = {"read": 0, "written": 0, "exhausted": False}
        self._on_end = on_end
        self._source: Iterable[np.ndarray] | StartedInput = self._model_blocks(blocks)

    def _model_blocks(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        counts, engine = self._counts, self.engine
        for block in blocks:
            x = block[:self.out_channels]
            counts["read"] += x.shape[-1]
            self._fifo.push(x)
            y = self._up.process(to_model_channels(x, engine.channels))
            if y.shape[-1]:
                yield y
        counts["exhausted"] = True
        if self._on_end:
            self._on_end(counts["read"])
        tail = self._up.flush()
        if tail.shape[-1]:
            yield tail

    def start(self) -> None:
        if not isinstance(self._source, StartedInput):
            self._source = self.engine.start_input(self._source)

    def close(self) -> None:
        source = self._source
        if isinstance(source, StartedInput):
            source.close()
        else:
            source.close()  # the generator, and with it the reader it pulls from

    def _aligned(self, stems_block: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """stems_block: (S, C_model, m) at the input rate."""
        counts = self._counts
        m = stems_block.shape[-1]
        if counts["exhausted"]:  # resampling may round up: never go past the input's length
            m = min(m, counts["read"] - counts["written"])
        if m > 0:
            counts["written"] += m
            yield self._fifo.pop(m), to_output_channels(stems_block[..., :m], self.out_channels)

    def pairs(self, on_segment: Callable[[int], None] | None = None,
              on_last: Callable[[], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The aligned (mix, stems) pairs; ``on_last`` as ``Engine.stream``'s."""
        engine, down, counts = self.engine, self._down, self._counts
        s, c = len(engine.stems), engine.channels
        # on_last only when asked for: stem_blocks also drives engine-like streams without it (pipelines/stream.py)
        outs = engine.stream(self._source, on_segment) if on_last is None else \
            engine.stream(self._source, on_segment, on_last)
        for out in outs:
            # at the model's own rate the block passes as it is (reshaping a view would copy it)
            y = out if down.identity else down.process(out.reshape(s * c, -1)).reshape(s, c, -1)
            if y.shape[-1]:
                yield from self._aligned(y)
        y = down.flush()
        if y.size:
            yield from self._aligned(y.reshape(s, c, -1))
        if counts["written"] < counts["read"]:  # rounding left us short: pad with silence
            yield from self._aligned(np.zeros((s, c, counts["read"] - counts["written"]), np.float32))


def stem_blocks(blocks: Iterable[np.ndarray], sample_rate: int, in_channels: int, engine: Engine,
                on_segment: Callable[[int], None] | None = None,
                on_end: Callable[[int], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``StemStream(...).pairs(on_segment)``: the aligned (mix, stems) pairs of one input."""
    yield from StemStream(blocks, sample_rate, in_channels, engine, on_end).pairs(on_segment)


@dataclass
class StartedFile:
    """A file whose first segment is already in the network (``start_file``), for ``separate_file``."""
    path: Path
    info: AudioInfo
    stream: StemStream

    def close(self) -> None:
        self.stream.close()


def _opened(path: Path, engine: Engine) -> tuple[AudioInfo, StemStream]:
    info = audio_info(path)
    if info.backend == "soundfile" and info.frames == 0:
        raise AudioError(f"{path}: has no audio samples (zero length)")

    def ended(read: int) -> None:
        if read == 0:
            raise AudioError(f"{path}: has no audio samples (zero length)")

    block_frames = max(1024, int(info.sample_rate * BLOCK_SECONDS))
    return info, StemStream(iter_blocks(path, block_frames, info=info), info.sample_rate, info.channels, engine, ended)


def start_file(path: Path, engine: Engine) -> StartedFile:
    """Open ``path`` and start its first segment (a batch's next file, while the current one ends); raises
    what ``separate_file`` would raise for it."""
    info, stream = _opened(path, engine)
    try:
        stream.start()
    except BaseException:
        stream.close()
        raise
    return StartedFile(path, info, stream)


def separate_file(path: Path, engine: Engine, chosen: list[str], residual: bool,
                  targets: dict[str, Path], subtype: str, clip: str,
                  on_segment: Callable[[int], None] | None = None, started: StartedFile | None = None,
                  on_last: Callable[[], None] | None = None) -> FileResult:
    """Write ``targets`` (output name -> final path) for one input file; raises AudioError.

    ``started``: this file, started already (``start_file``); ``on_last``: called just before its
    last segment is finished, the moment to start the next file."""
    try:
        folders = [str(t) for t in targets.values() if t.is_dir()]
        if folders:
            raise AudioError(f"{folders[0]}: this output path is an existing folder; move it away or choose "
                             "another --filename")
        info, stream = (started.info, started.stream) if started is not None else _opened(path, engine)
    except BaseException:
        if started is not None:
            started.close()
        raise
    result = FileResult(path=path, duration=info.duration)
    if info.channels > 2:
        result.messages.append(f"{path.name}: {info.channels} channels; separating the first two")
    out_channels = min(info.channels, 2)
    pairs = stream.pairs(on_segment, on_last)
    # each output under a unique temporary name beside it (stemsplit.atomic), in its final format
    # unless --clip rescale finds a peak above full scale (audio/stem_writer.py): two runs writing
    # the same folder never share one, and a dead run's are swept by the next
    writers: dict[str, ClipSafeWriter] = {}
    try:
        stem_index = [engine.stems.index(s) for s in chosen]
        for name, final in targets.items():
            writers[name] = ClipSafeWriter(final, info.sample_rate, out_channels, subtype, clip)
        everything = stem_index == list(range(len(engine.stems)))
        for mix, block in pairs:
            selected = block if everything else block[stem_index]  # no copy when every stem is written
            outs = dict(zip(chosen, selected))
            if residual:
                outs[list(targets)[-1]] = mix - selected.sum(axis=0)
            for name, arr in outs.items():
                writers[name].write(arr)
        for name, writer in writers.items():
            peak, gain = writer.peak, writer.gain
            if gain != 1.0:
                result.messages.append(f"{path.name}: {name} peaked at {peak:.2f}; rescaled by {gain:.3f} "
                                       "to avoid clipping")
            elif clip == "clamp" and peak > 1.0:
                result.messages.append(f"{path.name}: {name} peaked at {peak:.2f}; clamped to [-1, 1]")
            result.outputs[name] = writer.finish()
    finally:
        pairs.close()
        stream.close()  # the input file's reader, whatever happened
        for w in writers.values():  # the temporary files, whatever happened (an exception, SIGTERM)
            w.abort()
        for final in targets.values():  # and one an interrupt left between its creation and its writer
            remove_own_temps(final)
    return result
