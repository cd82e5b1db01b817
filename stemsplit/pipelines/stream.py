"""`stemsplit stream`: a file, raw PCM on a pipe, or a sound card -> the streaming engine -> stems.

    source blocks -> (resample to the model's rate) -> StreamEngine -> drop the first L samples,
      flush L more at the end -> (resample back) -> DIR/<stem>.wav, written as the blocks come

The files are delay-compensated: aligned with the input and of its length, so that they score as
offline stems do. File and pipe input go through ``separate_file.stem_blocks`` (the channel layout
and resampling of ``separate``); a sound card runs at the model's rate through ``LiveLoop``.
Each file is written under a temporary name and renamed when the stream ends, also when it ends
by Ctrl-C or SIGTERM (``StopFlag``): then it holds what was streamed until then. An error removes
them all. ``--stats-json`` gets ``StreamStats.as_dict()``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from stemsplit import pretrained
from stemsplit.atomic import remove_own_temps, write_text_atomic
from stemsplit.audio.convert import StreamingResampler, to_model_channels
from stemsplit.audio.io import AudioError, audio_info, subtype_for
from stemsplit.audio.stem_writer import ClipSafeWriter
from stemsplit.errors import CheckpointError, ConfigError
from stemsplit.pipelines.output_paths import prepare_output_folder
from stemsplit.pipelines.separate_file import stem_blocks
from stemsplit.resolver import ResolvedModel, resolve
from stemsplit.separation.live import AudioBackend, LiveLoop, play_choice
from stemsplit.separation.stream_sources import StopFlag, check_raw_format, file_blocks, raw_pcm_blocks
from stemsplit.separation.stream_step import open_stream_step
from stemsplit.separation.streaming import StreamEngine

BLOCK_LIMITS = (1, 1 << 20)


def default_streaming_model() -> str:
    """The shipped streaming model: the registry's ``stream_default``, else its first ``"streaming": true``."""
    reg = pretrained.registry()
    streaming = [name for name, entry in reg.get("models", {}).items() if entry.get("streaming")]
    name = reg.get("stream_default") or (streaming[0] if streaming else None)
    if name is None:
        raise CheckpointError("no streaming model ships with this build yet; pass --model with a causal model "
                              "(train one: stemsplit train -c configs/crnn_causal.yaml)")
    return name


def open_stream_engine(model: str | None, runtime: str = "auto", threads: int | None = 1
                       ) -> tuple[ResolvedModel, StreamEngine]:
    """The model (the shipped streaming default when None) and a streaming engine around it, on the CPU."""
    resolved = resolve(model if model not in (None, "default") else default_streaming_model(), runtime, "cpu",
                       threads)
    return resolved, StreamEngine(open_stream_step(resolved.runner))


@dataclass
class StreamStats:
    """What one stream measured; ``as_dict`` is the --stats-json file."""

    model: str
    runtime: str
    sample_rate: int        # the model's: the engine's samples and latency
    input_rate: int         # the input's: --block counts its samples
    block: int
    latency_samples: int
    compute_ms: list[float] = field(default_factory=list)
    deadline_misses: int = 0
    dropped_blocks: int = 0
    samples: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    stopped_by: int | None = None
    outputs: dict[str, Path] = field(default_factory=dict)

    def as_dict(self) -> dict:
        ms = np.asarray(self.compute_ms, np.float64)
        pct = (lambda q: round(float(np.percentile(ms, q)), 4)) if ms.size else (lambda q: None)
        audio = self.samples / self.sample_rate
        return {"model": self.model, "runtime": self.runtime, "sample_rate": self.sample_rate,
                "input_sample_rate": self.input_rate, "block": self.block,
                "block_ms": round(1e3 * self.block / self.input_rate, 4), "latency_samples": self.latency_samples,
                "latency_ms": round(1e3 * self.latency_samples / self.sample_rate, 4),
                "compute_ms_p50": pct(50), "compute_ms_p99": pct(99),
                "compute_ms_max": round(float(ms.max()), 4) if ms.size else None,
                "deadline_misses": self.deadline_misses, "dropped_blocks": self.dropped_blocks,
                "blocks": int(ms.size), "audio_seconds": round(audio, 4), "wall_seconds": round(self.wall_seconds, 4),
                "realtime_factor": round(audio / self.wall_seconds, 3) if self.wall_seconds else None,
                "cpu_seconds": round(self.cpu_seconds, 4),
                # the share of one core that the stream takes when it runs in real time
                "cpu_percent_realtime": round(100 * self.cpu_seconds / audio, 2) if audio else None,
                "stopped_by_signal": self.stopped_by,
                "outputs": {k: str(v) for k, v in self.outputs.items()}}


@dataclass
class StreamRequest:
    input: str | None               # a file, "-" (raw PCM on stdin), or None (--input-device)
    out_dir: Path | None
    model: str | None = None
    block: int = 512
    bits: int = 16
    runtime: str = "auto"
    threads: int | None = 1
    raw_format: str | None = None
    rate: int | None = None
    channels: int | None = None
    play: str | None = None
    stats_json: Path | None = None


class StemFiles:
    """DIR/<stem>.wav for every stem, written block by block under temporary names."""

    def __init__(self, out_dir: Path, stems: list[str], sample_rate: int, channels: int, bits: int):
        prepare_output_folder(out_dir)
        subtype = subtype_for("wav", bits)
        clip = "none" if subtype == "FLOAT" else "clamp"  # a stream cannot rescale by a peak still to come
        self.targets = {stem: out_dir / f"{stem}.wav" for stem in stems}
        self.writers: dict[str, ClipSafeWriter] = {}
        try:
            for stem, path in self.targets.items():
                self.writers[stem] = ClipSafeWriter(path, sample_rate, channels, subtype, clip)
        except BaseException:
            self.abort()
            raise

    def write(self, stems: np.ndarray) -> None:
        """(S, C, m) float32."""
        for writer, block in zip(self.writers.values(), stems):
            writer.write(block)

    def finish(self) -> dict[str, Path]:
        return {stem: writer.finish() for stem, writer in self.writers.items()}

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        for path in self.targets.values():
            remove_own_temps(path)


class _Aligned:
    """The engine as ``stem_blocks`` takes one: delay-compensated (S, C, m) blocks, each timed."""

    def __init__(self, engine: StreamEngine, block: int, stats: StreamStats):
        self.engine, self.stats = engine, stats
        self.sample_rate, self.channels, self.stems = engine.sample_rate, engine.channels, engine.stems
        self._out = np.empty((len(engine.stems), engine.channels, block), np.float32)

    def stream(self, blocks: Iterable[np.ndarray], on_segment=None) -> Iterator[np.ndarray]:
        skip = self.engine.latency_samples
        for block in blocks:
            m = block.shape[-1]
            out = self._out[..., :m] if m <= self._out.shape[-1] else None
            begin = time.perf_counter()
            out = self.engine.process(block, out)
            took = time.perf_counter() - begin
            self.stats.compute_ms.append(took * 1e3)
            self.stats.deadline_misses += took > m / self.sample_rate  # slower than real time (counted only)
            self.stats.samples += m
            cut = min(skip, m)
            skip -= cut
            if cut < m:
                yield out[..., cut:]  # written before the next block overwrites it
        tail = self.engine.flush()
        if skip < tail.shape[-1]:
            yield tail[..., skip:]


def _source(req: StreamRequest, stop: StopFlag, stdin: BinaryIO | None) -> tuple[Iterator[np.ndarray], int, int]:
    """(blocks, rate, channels) of a file or of raw PCM on stdin."""
    if req.input == "-":
        _, rate, channels = check_raw_format(req.raw_format, req.rate, req.channels)
        return raw_pcm_blocks(stdin, req.raw_format, channels, req.block, stop), rate, channels
    if req.raw_format is not None:
        raise ConfigError("--raw-format, --rate and --channels describe raw PCM on standard input (INPUT '-'); "
                          "a file says its own")
    info = audio_info(Path(req.input))
    return file_blocks(Path(req.input), req.block, stop), info.sample_rate, info.channels


def check_request(req: StreamRequest) -> None:
    if not BLOCK_LIMITS[0] <= req.block <= BLOCK_LIMITS[1]:
        raise ConfigError(f"--block {req.block}: must be between {BLOCK_LIMITS[0]} and {BLOCK_LIMITS[1]} samples")
    if req.bits not in (16, 24, 32):
        raise ConfigError(f"--bits {req.bits}: choose 16, 24 (integer) or 32 (float)")


def stream_to_files(req: StreamRequest, stop: StopFlag | None = None, stdin: BinaryIO | None = None) -> StreamStats:
    """A file or raw PCM on stdin -> DIR/<stem>.wav, delay-compensated (module doc)."""
    check_request(req)
    stop = stop or StopFlag()
    if req.out_dir is None:
        raise ConfigError("give an output folder with -o (or --play STEM to listen)")
    blocks, rate, in_channels = _source(req, stop, stdin)
    resolved, engine = open_stream_engine(req.model, req.runtime, req.threads)
    stats = StreamStats(resolved.name, resolved.runtime, engine.sample_rate, rate, req.block, engine.latency_samples)
    files = StemFiles(req.out_dir, engine.stems, rate, min(in_channels, 2), req.bits)
    wall, cpu = time.perf_counter(), time.process_time()

    def ended(read: int) -> None:
        if read == 0 and not stop.requested:
            raise AudioError(f"{'standard input' if req.input == '-' else req.input}: has no audio samples")

    try:
        for _mix, stems in stem_blocks(blocks, rate, in_channels, _Aligned(engine, req.block, stats), on_end=ended):
            files.write(stems)
        stats.outputs = files.finish()
    except BaseException:
        files.abort()
        raise
    stats.wall_seconds, stats.cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    stats.stopped_by = stop.signum
    _write_stats(req, stats)
    return stats


def stream_live(req: StreamRequest, backend: AudioBackend, stop: StopFlag | None = None,
                on_status: Callable[[LiveLoop], None] | None = None) -> StreamStats:
    """A sound card (or a file played in real time) through ``LiveLoop``: ``--play`` to the output
    device, and DIR/<stem>.wav (at the model's rate) when ``out_dir`` is given."""
    check_request(req)
    stop = stop or StopFlag()
    if req.out_dir is None and req.play is None:
        raise ConfigError("nothing to do: give -o DIR to write the stems, --play STEM to listen, or both")
    if req.input == "-":
        raise ConfigError("live audio plays a file or a sound card's input (--input-device), not standard input")
    resolved, engine = open_stream_engine(req.model, req.runtime, req.threads)
    play_choice(engine.stems, req.play)  # a bad --play fails before any file is opened
    source = None
    if req.input is not None:
        blocks, rate, _ = _source(req, stop, None)
        source = _reblocked(blocks, rate, engine, req.block)
    stats = StreamStats(resolved.name, resolved.runtime, engine.sample_rate, engine.sample_rate, req.block,
                        engine.latency_samples)
    files = StemFiles(req.out_dir, engine.stems, engine.sample_rate, engine.channels, req.bits) if req.out_dir else None
    skip = [engine.latency_samples]

    def write(stems: np.ndarray) -> None:  # on the worker thread: drop the first L samples, as files do
        cut = min(skip[0], stems.shape[-1])
        skip[0] -= cut
        if files is not None and cut < stems.shape[-1]:
            files.write(stems[..., cut:])

    def idle() -> bool:
        if on_status is not None:
            on_status(loop)
        return not stop.requested

    loop = LiveLoop(engine, req.block, play=req.play, on_stems=write, source=source)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        try:
            loop.run(backend, in_channels=0 if source is not None else engine.channels,
                     out_channels=engine.channels if req.play else 0, idle=idle)
        finally:
            loop.close()
        write(engine.flush())
        if files is not None:
            stats.outputs = files.finish()
    except BaseException:
        if files is not None:
            files.abort()
        raise
    stats.wall_seconds, stats.cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    stats.compute_ms, stats.samples = list(loop.compute_ms), loop.blocks * req.block
    stats.deadline_misses, stats.dropped_blocks, stats.stopped_by = loop.misses, loop.dropped, stop.signum
    _write_stats(req, stats)
    return stats


def _reblocked(blocks: Iterator[np.ndarray], rate: int, engine: StreamEngine, block: int) -> Iterator[np.ndarray]:
    """A file's blocks at the model's rate and channels in blocks of exactly ``block`` (the last padded)."""
    resampler = StreamingResampler(rate, engine.sample_rate)
    pending = np.zeros((engine.channels, 0), np.float32)

    def model_blocks():
        for b in blocks:
            yield resampler.process(to_model_channels(b[:2], engine.channels))
        yield resampler.flush()

    for part in model_blocks():
        pending = np.concatenate([pending, part], axis=-1)
        while pending.shape[-1] >= block:
            yield np.ascontiguousarray(pending[:, :block])
            pending = pending[:, block:]
    if pending.shape[-1]:
        yield np.pad(pending, ((0, 0), (0, block - pending.shape[-1])))


def _write_stats(req: StreamRequest, stats: StreamStats) -> None:
    if req.stats_json is not None:
        write_text_atomic(req.stats_json, json.dumps(stats.as_dict(), indent=2) + "\n")
