"""Compressed audio for the listening report: AAC (.m4a) or Opus (.webm) through ffmpeg.

The raw float samples go to ffmpeg on its standard input, so nothing touches the disk but the
encoded file, which is written beside its target under a temporary name and renamed into
place when ffmpeg has finished: a killed run never leaves a half-written file.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from stemsplit.atomic import mkstemp_beside
from stemsplit.audio.io import AudioError

# codec -> (file suffix, ffmpeg muxer, encoder, forced sample rate or None)
# Opus only runs at 48 kHz (or 8/12/16/24): resample rather than let ffmpeg pick silently.
CODECS = {
    "aac": (".m4a", "ipod", "aac", None),
    "opus": (".webm", "webm", "libopus", 48000),
}
_BITRATE = re.compile(r"^[1-9][0-9]{0,3}k$")
_ENCODERS: set[str] | None = None  # what this machine's ffmpeg can encode, read once


def suffix_for(codec: str) -> str:
    return CODECS[_codec(codec)][0]


def _codec(codec: str) -> str:
    if codec not in CODECS:
        raise AudioError(f"audio codec {codec!r} is not supported; choose one of {', '.join(CODECS)}")
    return codec


def _ffmpeg_encoders() -> set[str]:
    global _ENCODERS
    if _ENCODERS is None:
        proc = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True)
        # lines look like " A..... libopus   libopus Opus (codec opus)"
        _ENCODERS = {parts[1] for line in proc.stdout.splitlines()
                     if len(parts := line.split()) >= 2 and parts[0].startswith("A")}
    return _ENCODERS


def check_encoder(codec: str, bitrate: str) -> None:
    """Raise a one-line AudioError unless ffmpeg is installed and can write ``codec`` at ``bitrate``."""
    _codec(codec)
    if not _BITRATE.match(bitrate):
        raise AudioError(f"audio bitrate {bitrate!r}: give kilobits per second such as '64k'")
    if shutil.which("ffmpeg") is None:
        raise AudioError("compressed audio needs ffmpeg, which is not installed (apt-get install ffmpeg)")
    encoder = CODECS[codec][2]
    if encoder not in _ffmpeg_encoders():
        raise AudioError(f"this ffmpeg cannot encode {codec} (no {encoder} encoder); "
                         "install a full ffmpeg build (apt-get install ffmpeg)")


def encode_compressed(audio: np.ndarray, sample_rate: int, path: str | Path, codec: str = "opus",
                      bitrate: str = "64k") -> Path:
    """Encode ``audio`` (channels, time) float into ``path`` atomically; returns ``path``.

    ``path`` should carry ``suffix_for(codec)`` so that browsers guess the type right.
    Samples are passed as float32: out-of-range peaks are kept, not clipped, by the encoder.
    """
    check_encoder(codec, bitrate)
    path = Path(path)
    _suffix, muxer, encoder, rate = CODECS[codec]
    data = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T)  # interleaved (time, channels)
    if data.ndim != 2 or data.shape[1] < 1:
        raise AudioError(f"{path}: expected (channels, time) audio, got shape {np.shape(audio)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = mkstemp_beside(path, suffix=".part")
        os.close(fd)
    except OSError as exc:
        raise AudioError(f"{path.parent}: cannot write output here ({exc.strerror})") from None
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "f32le", "-ar", str(int(sample_rate)),
           "-ac", str(data.shape[1]), "-i", "pipe:0", "-map_metadata", "-1",
           "-c:a", encoder, "-b:a", bitrate]
    if rate is not None and rate != sample_rate:
        cmd += ["-ar", str(rate)]
    if muxer == "ipod":
        cmd += ["-movflags", "+faststart"]  # the index first: a browser can start before the end arrives
    cmd += ["-f", muxer, tmp]
    try:
        proc = subprocess.run(cmd, input=data.tobytes(), capture_output=True)
        if proc.returncode != 0:
            reason = (proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[-1]
            raise AudioError(f"{path}: ffmpeg could not encode {codec} ({reason[:160]})")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
