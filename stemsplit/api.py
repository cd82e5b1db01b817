"""The public Python API of stemsplit.

    import stemsplit
    sep = stemsplit.Separator()                     # the default model; or Separator("NAME"), Separator("x.ckpt")
    stems = sep.separate(audio, sample_rate)        # {stem: (channels, samples) float32}
    sep.separate_file("song.mp3", "stems/")         # the files `stemsplit separate` writes

    live = stemsplit.StreamSeparator()              # the shipped streaming model
    stems = live.process(block)                     # {stem: (channels, len(block))}, latency_samples late

Every error a caller can fix is a ``StemsplitError`` with a one-line message.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from stemsplit.errors import StemsplitError
from stemsplit.pipelines.separator import SeparateError, Separator

__all__ = ["Separator", "StreamSeparator", "StemsplitError", "SeparateError"]


class StreamSeparator:
    """Real-time separation of a stream of blocks with a causal (streaming) model.

    ``model``: a streaming model's shipped name, a causal checkpoint (.ckpt) or its .onnx; None is
    the shipped streaming model. ``sample_rate`` must be the model's (44100 for the shipped one:
    open the sound device at that rate); ``channels`` is 1 or 2. ``process(block)`` takes
    (channels, n) float samples, any n, and returns {stem: (channels, n) float32}: the stems of
    the input ``latency_samples`` earlier (exactly, whatever the block sizes). ``flush()`` returns
    the last ``latency_samples`` of them and starts a new stream. Pass ``out`` (stems, channels, n)
    to ``process`` to have it write there and allocate nothing (an audio callback). Not
    thread-safe: one StreamSeparator per stream, called from one thread at a time.
    """

    def __init__(self, model: str | os.PathLike | None = None, sample_rate: int = 44100, channels: int = 2, *,
                 runtime: str = "auto", threads: int = 1):
        from stemsplit.pipelines.stream import open_stream_engine

        if not _is_int(sample_rate) or sample_rate <= 0:
            raise SeparateError(f"sample_rate {sample_rate!r}: expected a positive whole number of Hz")
        if channels not in (1, 2) or not _is_int(channels):
            raise SeparateError(f"channels {channels!r}: 1 or 2")
        resolved, self._engine = open_stream_engine(None if model is None else os.fspath(model), runtime, threads)
        if sample_rate != self._engine.sample_rate:
            raise SeparateError(f"sample_rate {sample_rate}: this model streams at {self._engine.sample_rate} Hz; "
                                f"open the device (or resample the input) at {self._engine.sample_rate} Hz")
        self.model_name, self.runtime, self.channels = resolved.name, resolved.runtime, int(channels)
        self._scratch = np.zeros((len(self.stems), self._engine.channels, 0), np.float32)

    @property
    def stems(self) -> list[str]:
        return list(self._engine.stems)

    @property
    def sample_rate(self) -> int:
        return self._engine.sample_rate

    @property
    def latency_samples(self) -> int:
        """Samples from an input sample to its stems: n_fft - 1 (+ the model's look-ahead)."""
        return self._engine.latency_samples

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sample_rate

    def __repr__(self) -> str:
        return (f"StreamSeparator({self.model_name!r}, runtime={self.runtime!r}, "
                f"latency={1e3 * self.latency_seconds:.1f} ms, stems={self.stems})")

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """(channels, n) (or (n,) with one channel) -> {stem: (channels, n) float32}, views into ``out``."""
        x = np.asarray(block)
        if x.ndim == 1 and self.channels == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise SeparateError(f"block: expected shape ({self.channels}, samples), got {tuple(x.shape)}"
                                + ("; a sounddevice block is (frames, channels): pass indata.T" if x.ndim == 2 else ""))
        if not np.isfinite(x.sum()):  # a reduction: no temporary array
            raise SeparateError("block: contains NaN or infinite samples")
        n, s = x.shape[-1], len(self.stems)
        if out is None:
            out = np.empty((s, self.channels, n), np.float32)
        elif out.shape != (s, self.channels, n) or out.dtype != np.float32:
            raise SeparateError(f"out: expected a float32 array of shape {(s, self.channels, n)}, got "
                                f"{out.dtype} {tuple(out.shape)}")
        self._run(x, out, self._engine.process)
        return dict(zip(self.stems, out))

    def flush(self) -> dict[str, np.ndarray]:
        """{stem: (channels, latency_samples)}: the end of the stream; the next ``process`` starts a new one."""
        tail = self._engine.flush()
        if self.channels == 1:
            tail = tail.mean(axis=1, keepdims=True)
        return dict(zip(self.stems, tail))

    def reset(self) -> None:
        """Forget the stream so far (its input history and the model's state)."""
        self._engine.reset()

    def _run(self, x: np.ndarray, out: np.ndarray, process) -> None:
        model_channels = self._engine.channels
        if self.channels == model_channels:
            process(x, out)
            return
        n = x.shape[-1]
        if self._scratch.shape[-1] < n:  # grown to the largest block, then reused
            self._scratch = np.zeros((len(self.stems), model_channels, n), np.float32)
        scratch = self._scratch[..., :n]
        process(np.broadcast_to(x, (model_channels, n)), scratch)  # mono in: both channels
        np.mean(scratch, axis=1, out=out[:, 0])  # and averaged back


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
