"""One output stem with clip protection, written in its final format in one pass when it can be.

``--clip rescale`` scales a stem by 0.999 / peak when it peaks above full scale, and the peak is
known only at the end. Most stems never get there, so the file is written straight away in its
final format (a temporary name, renamed into place by ``finish``). The first block that takes the
peak above 1.0 switches the stem to a float32 scratch file: what was written so far is copied
into it, the rest follows, and ``finish`` rewrites it with the gain. The copied head went through
the final format once already, so at 16 bits it is rounded twice (one more step at most).
``clamp`` and ``none`` never need the scratch file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stemsplit.audio.convert import clip_gain, protect
from stemsplit.audio.io import AudioInfo, iter_blocks, rewrite_audio
from stemsplit.audio.writer import AudioWriter, write_failure

_COPY_FRAMES = 1 << 18


class ClipSafeWriter:
    """``write`` (channels, time) float32 blocks, then ``finish()``; ``abort()`` leaves nothing."""

    def __init__(self, final: Path, sample_rate: int, channels: int, subtype: str, clip: str):
        self.final, self.sample_rate, self.channels = Path(final), int(sample_rate), channels
        self.subtype, self.clip = subtype, clip
        self.peak = 0.0
        self._direct: AudioWriter | None = AudioWriter(final, sample_rate, channels, subtype, scratch=True)
        self._scratch: AudioWriter | None = None

    def write(self, block: np.ndarray) -> None:
        if block.size:  # the peak |x| without an |x| temporary
            self.peak = max(self.peak, float(block.max()), -float(block.min()))
        if self._direct is not None and self.clip == "rescale" and self.peak > 1.0:
            self._to_scratch()
        if self._direct is not None:
            self._direct.write(protect(block, self.clip))
        else:
            self._scratch.write(block)

    def _to_scratch(self) -> None:
        direct, self._direct = self._direct, None
        written = direct.commit()  # closed, still under its temporary name
        try:
            self._scratch = AudioWriter(self.final, self.sample_rate, self.channels, "FLOAT", fmt="WAV",
                                        scratch=True)
            info = AudioInfo(written, self.sample_rate, self.channels, direct.frames, "soundfile")
            for block in iter_blocks(written, _COPY_FRAMES, info=info):
                self._scratch.write(block)
        finally:
            direct.abort()  # deletes the file it wrote

    @property
    def gain(self) -> float:
        """The rescale gain ``finish`` applies (1.0 when nothing needs doing)."""
        return clip_gain(self.peak, self.clip)

    def finish(self) -> Path:
        """Put the complete file in place; returns its path."""
        if self._direct is not None:
            written = self._direct.commit()
            try:
                os.replace(written, self.final)
            except OSError as exc:
                self._direct.abort()
                raise write_failure(self.final, exc) from None
            return self.final
        stage = self._scratch.commit()
        info = AudioInfo(stage, self.sample_rate, self.channels, self._scratch.frames, "soundfile")
        gain = self.gain
        rewrite_audio(stage, self.final, self.subtype, lambda b: protect(b, self.clip, gain), info=info)
        self._scratch.abort()  # read: the scratch file goes now
        return self.final

    def abort(self) -> None:
        """Delete whatever temporary file is left; safe after ``finish`` and more than once."""
        for writer in (self._direct, self._scratch):
            if writer is not None:
                writer.abort()
