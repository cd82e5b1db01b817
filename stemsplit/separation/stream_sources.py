"""Where a stream's samples come from: a file read block by block, or raw PCM on a pipe; and the
flag that ends a stream cleanly on Ctrl-C or SIGTERM.

Blocks are float32 (channels, <= block) at the source's own rate. A stop request ends the input
at the next block boundary, so the stream is flushed and its files finished as usual; a read
that is waiting on a pipe is interrupted at once (the signal handler raises inside it).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from stemsplit.audio.io import AudioError, iter_blocks
from stemsplit.errors import ConfigError

RAW_FORMATS = {"f32le": np.dtype("<f4"), "s16le": np.dtype("<i2")}


class _StopReading(BaseException):
    """Raised by the signal handler inside a blocking read (a BaseException: nothing swallows it)."""


class StopFlag:
    """A stop request (the signal's number), set by a handler that ``request`` is installed as."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._reading = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int, frame=None) -> None:
        """Signal handler: the stream ends at the next block; a blocking read ends now."""
        self.signum = signum
        if self._reading:
            self._reading = False
            raise _StopReading

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around a read that may wait: a stop request interrupts it (the read's data is dropped)."""
        self._reading = True
        try:
            yield
        finally:
            self._reading = False


def until_stopped(blocks: Iterator[np.ndarray], stop: StopFlag | None) -> Iterator[np.ndarray]:
    """``blocks`` until the stop flag is raised (checked before each block)."""
    for block in blocks:
        if stop is not None and stop.requested:
            return
        yield block
        if stop is not None and stop.requested:
            return


def file_blocks(path: Path, block: int, stop: StopFlag | None = None) -> Iterator[np.ndarray]:
    """(channels, <= block) float32 blocks of an audio file at its own rate, never the whole file."""
    return until_stopped(iter_blocks(path, block), stop)


def check_raw_format(fmt: str | None, rate: int | None, channels: int | None) -> tuple[np.dtype, int, int]:
    """The sample type, rate and channel count of raw PCM input; one-line ConfigErrors."""
    if fmt is None or rate is None or channels is None:
        raise ConfigError("INPUT '-' reads raw PCM from standard input: give --raw-format f32le|s16le, --rate R "
                          "and --channels C, e.g. ffmpeg -i song.mp3 -f f32le -ac 2 -ar 44100 - | stemsplit stream "
                          "- --raw-format f32le --rate 44100 --channels 2 -o out/")
    if fmt not in RAW_FORMATS:
        raise ConfigError(f"--raw-format {fmt!r}: choose one of {', '.join(RAW_FORMATS)}")
    if rate <= 0:
        raise ConfigError(f"--rate {rate}: must be a positive number of Hz")
    if not 1 <= channels <= 64:
        raise ConfigError(f"--channels {channels}: must be between 1 and 64")
    return RAW_FORMATS[fmt], rate, channels


def raw_pcm_blocks(fh: BinaryIO, fmt: str, channels: int, block: int,
                   stop: StopFlag | None = None) -> Iterator[np.ndarray]:
    """(channels, <= block) float32 blocks of interleaved little-endian PCM read from ``fh``.

    s16le is scaled by 1/32768 (as soundfile reads 16-bit files). A trailing partial frame at the
    end of the input is dropped."""
    dtype = RAW_FORMATS[fmt]
    fh = getattr(fh, "raw", fh)  # unbuffered: each read returns what the pipe has, so none is lost on a stop
    frame_bytes = channels * dtype.itemsize
    buf = bytearray(block * frame_bytes)
    view = memoryview(buf)
    scale = np.float32(1 / 32768) if dtype.kind == "i" else None
    ended = False
    while not ended and not (stop is not None and stop.requested):
        got = 0
        try:
            with stop.reading() if stop is not None else _nothing():
                while got < len(buf):
                    n = fh.readinto(view[got:])
                    if not n:
                        ended = True
                        break
                    got += n
        except _StopReading:
            ended = True  # what had arrived still counts
        frames = got // frame_bytes
        if frames == 0:
            return
        samples = np.frombuffer(buf, dtype=dtype, count=frames * channels).reshape(frames, channels)
        out = samples.T.astype(np.float32)  # a new array each block: consumers keep blocks (not the hot path)
        if scale is not None:
            out *= scale
        elif not np.isfinite(out).all():
            raise AudioError("standard input: NaN or infinite samples; is --raw-format right (f32le or s16le)?")
        yield out


@contextmanager
def _nothing() -> Iterator[None]:
    yield
