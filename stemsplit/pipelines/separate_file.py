"""Separate one audio file into stem files, streaming, in bounded memory.

    file blocks (input rate) -> channel layout -> resample to model rate -> chunked engine
      -> resample back -> channel layout of the input -> float32 scratch files -> clip protection
      -> final files (renamed into place only when complete)

Scratch and partial files carry stemsplit's temporary names (``stemsplit.atomic``) and are
removed on every exit path: success, a bad file, a full disk, SIGTERM (which the CLI turns into
an exception so that these ``finally`` blocks run).

Only a few segments of audio are in memory at any time, whatever the file's length.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from stemsplit.atomic import remove_own_temps
from stemsplit.audio.convert import (StreamingResampler, clip_gain, protect, to_model_channels,
                                     to_output_channels)
from stemsplit.audio.io import AudioError, AudioInfo, AudioWriter, audio_info, iter_blocks, rewrite_audio
from stemsplit.separation.engine import Separator

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
        self._blocks: deque[torch.Tensor] = deque()

    def push(self, block: torch.Tensor) -> None:
        self._blocks.append(block)

    def pop(self, n: int) -> torch.Tensor:
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
        return torch.cat(parts, dim=-1)


def separate_file(path: Path, separator: Separator, chosen: list[str], residual: bool,
                  targets: dict[str, Path], subtype: str, clip: str,
                  on_segment: Callable[[int], None] | None = None) -> FileResult:
    """Write ``targets`` (output name -> final path) for one input file; raises AudioError."""
    folders = [str(t) for t in targets.values() if t.is_dir()]
    if folders:
        raise AudioError(f"{folders[0]}: this output path is an existing folder; move it away or choose "
                         "another --filename")
    info = audio_info(path)
    if info.backend == "soundfile" and info.frames == 0:
        raise AudioError(f"{path}: has no audio samples (zero length)")
    result = FileResult(path=path, duration=info.duration)
    if info.channels > 2:
        result.messages.append(f"{path.name}: {info.channels} channels; separating the first two")
    out_channels = min(info.channels, 2)
    model_sr, model_ch = separator.sample_rate, separator.channels
    stem_index = [separator.stems.index(s) for s in chosen]
    up = StreamingResampler(info.sample_rate, model_sr)
    down = StreamingResampler(model_sr, info.sample_rate)
    fifo = _InputFifo()
    counts = {"read": 0, "written": 0, "exhausted": False}

    def model_blocks() -> Iterator[torch.Tensor]:
        block_frames = max(1024, int(info.sample_rate * BLOCK_SECONDS))
        for block in iter_blocks(path, block_frames, info=info):
            x = torch.from_numpy(block[:out_channels])
            counts["read"] += x.shape[-1]
            fifo.push(x)
            y = up.process(to_model_channels(x, model_ch))
            if y.shape[-1]:
                yield y
        counts["exhausted"] = True
        if counts["read"] == 0:
            raise AudioError(f"{path}: has no audio samples (zero length)")
        tail = up.flush()
        if tail.shape[-1]:
            yield tail

    # float32 scratch files beside each output, under unique temporary names (stemsplit.atomic):
    # two runs writing the same folder never share one, and a dead run's are swept by the next
    writers: dict[str, AudioWriter] = {}
    peaks = {name: 0.0 for name in targets}
    try:
        for name, final in targets.items():
            writers[name] = AudioWriter(final, info.sample_rate, out_channels, "FLOAT", fmt="WAV", scratch=True)

        def emit(stems_block: torch.Tensor) -> None:
            """stems_block: (S, C_model, m) at the input rate."""
            m = stems_block.shape[-1]
            if counts["exhausted"]:  # resampling rounds up: never write past the input's length
                m = min(m, counts["read"] - counts["written"])
            if m <= 0:
                return
            block = to_output_channels(stems_block[..., :m], info.channels if info.channels == 1 else 2)
            mix = fifo.pop(m)
            selected = block[stem_index]
            outs = dict(zip(chosen, selected))
            if residual:
                outs[list(targets)[-1]] = mix - selected.sum(dim=0)
            for name, data in outs.items():
                arr = data.numpy()
                peaks[name] = max(peaks[name], float(np.abs(arr).max(initial=0.0)))
                writers[name].write(arr)
            counts["written"] += m

        s, c = len(separator.stems), model_ch
        for out in separator.stream(model_blocks(), on_segment):
            y = down.process(out.reshape(s * c, -1))
            if y.shape[-1]:
                emit(y.reshape(s, c, -1))
        y = down.flush()
        if y.numel():
            emit(y.reshape(s, c, -1))
        if counts["written"] < counts["read"]:  # rounding left us short: pad with silence
            emit(torch.zeros(s, c, counts["read"] - counts["written"]))
        stage = {name: w.commit() for name, w in writers.items()}
        for name, final in targets.items():
            gain = clip_gain(peaks[name], clip)
            if gain != 1.0:
                result.messages.append(f"{path.name}: {name} peaked at {peaks[name]:.2f}; "
                                       f"rescaled by {gain:.3f} to avoid clipping")
            elif clip == "clamp" and peaks[name] > 1.0:
                result.messages.append(f"{path.name}: {name} peaked at {peaks[name]:.2f}; clamped to [-1, 1]")
            staged = AudioInfo(stage[name], info.sample_rate, out_channels, counts["read"], "soundfile")
            rewrite_audio(stage[name], final, subtype, lambda b, g=gain: protect(b, clip, g), info=staged)
            result.outputs[name] = final
    finally:
        for w in writers.values():  # the scratch files, whatever happened (an exception, SIGTERM)
            w.abort()
        for final in targets.values():  # and one an interrupt left between its creation and its writer
            remove_own_temps(final)
    return result
