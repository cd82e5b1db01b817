"""Reading and writing audio files: the only module that touches soundfile or ffmpeg.

Arrays are float32 ``(channels, time)`` at the file's own sample rate. Formats libsndfile
reads (wav, flac, ogg, mp3, aiff) go through soundfile; anything else ffmpeg decodes (m4a,
aac, opus, video files) goes through an ``ffmpeg`` pipe. Readers stream in blocks so a long
file is never held whole in memory. Writers (``stemsplit.audio.writer``, re-exported here)
write to a temporary file and rename it into place only when complete, so a killed run never
leaves a half-written file behind.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from stemsplit.audio.errors import AudioError, DiskFullError  # noqa: F401  (re-exported)
from stemsplit.audio.writer import SUBTYPES, AudioWriter, subtype_for, write_audio  # noqa: F401  (re-exported)

SOUNDFILE_EXTS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
FFMPEG_EXTS = {".m4a", ".aac", ".mp4", ".opus", ".webm", ".mkv", ".mov", ".wma", ".ac3", ".mka", ".avi"}
AUDIO_EXTS = SOUNDFILE_EXTS | FFMPEG_EXTS


@dataclass
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int  # may be an estimate for ffmpeg-decoded streams
    backend: str  # "soundfile" | "ffmpeg"

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_audio_path(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTS and not path.name.startswith(".")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")


def _ffprobe(path: Path) -> AudioInfo:
    if shutil.which("ffprobe") is None:
        raise AudioError(f"{path}: this format needs ffmpeg/ffprobe, which are not installed "
                         "(apt-get install ffmpeg)")
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration:format=duration", "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        data = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        data = {}
    streams = data.get("streams") or []
    if proc.returncode != 0 or not streams:
        reason = (proc.stderr.strip().splitlines() or ["no audio stream"])[-1]
        raise AudioError(f"{path}: not a readable audio file ({reason[:160]})")
    st = streams[0]
    sr = int(st.get("sample_rate") or 0)
    duration = st.get("duration") or (data.get("format") or {}).get("duration") or 0
    if sr <= 0:
        raise AudioError(f"{path}: audio stream has no sample rate")
    return AudioInfo(path, sr, int(st.get("channels") or 0), int(round(float(duration) * sr)), "ffmpeg")


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """``(frames the header promises, frames the file holds)`` for a RIFF/WAVE file that was cut
    short (an interrupted copy or download); None for a whole file or another format.

    libsndfile reads such a file without a word and reports only the frames present, so the
    header is read here: the data chunk's declared size against the bytes after it. Sizes 0
    and 0xFFFFFFFF are what streaming writers put when they cannot know the length.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(fh.fileno()).st_size
            block_align, pos = 0, 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk, length = struct.unpack("<4sI", fh.read(8))
                if chunk == b"fmt ":
                    fmt = fh.read(16)
                    block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
                elif chunk == b"data":
                    if not block_align or length in (0, 0xFFFFFFFF):
                        return None
                    promised, held = length // block_align, (size - pos - 8) // block_align
                    return (promised, held) if promised > held else None
                pos += 8 + length + (length & 1)  # chunks are padded to an even size
    except (OSError, struct.error):
        return None
    return None


def audio_info(path: str | Path) -> AudioInfo:
    """Rate, channels and length of a file; AudioError (one line) for a file that cannot be
    used: missing, empty, unreadable, or a WAV whose header promises more audio than it holds."""
    path = Path(path)
    _require_file(path)
    if path.suffix.lower() in SOUNDFILE_EXTS:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            if path.suffix.lower() in {".wav", ".flac", ".aif", ".aiff"}:
                raise AudioError(f"{path}: not a readable audio file ({exc})") from None
            # libsndfile builds without mp3/ogg support: fall back to ffmpeg
        else:
            rate = int(info.samplerate)
            short = _wav_shortfall(path) if path.suffix.lower() == ".wav" else None
            if short is not None and rate > 0:
                raise AudioError(f"{path}: truncated: its header promises {short[0] / rate:.2f} s of audio but the "
                                 f"file holds {short[1] / rate:.2f} s; copy or export it again (to keep what is "
                                 "there, rewrite it first: ffmpeg -i IN.wav OUT.wav)")
            return AudioInfo(path, rate, int(info.channels), int(info.frames), "soundfile")
    return _ffprobe(path)


def _check_finite(block: np.ndarray, path: Path) -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{path}: contains NaN or Inf samples; the file is damaged")


def _soundfile_blocks(path: Path, block_frames: int, start: int, frames: int) -> Iterator[np.ndarray]:
    try:
        with sf.SoundFile(str(path)) as fh:
            if start:
                fh.seek(start)
            remaining = frames if frames >= 0 else None
            while remaining is None or remaining > 0:
                n = block_frames if remaining is None else min(block_frames, remaining)
                block = fh.read(n, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if remaining is not None:
                    remaining -= block.shape[0]
                yield block.T
    except sf.LibsndfileError as exc:
        raise AudioError(f"{path}: read failed ({exc}); the file may be truncated or corrupt") from None


def _ffmpeg_blocks(path: Path, channels: int, block_frames: int, start: int, frames: int,
                   sample_rate: int) -> Iterator[np.ndarray]:
    cmd = ["ffmpeg", "-v", "error", "-nostdin"]
    if start:
        cmd += ["-ss", f"{start / sample_rate:.6f}"]
    cmd += ["-i", str(path), "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bytes_per_frame = 4 * channels
    remaining = frames if frames >= 0 else None
    leftover = b""
    reached_eof = False
    try:
        while remaining is None or remaining > 0:
            want = block_frames if remaining is None else min(block_frames, remaining)
            chunk = leftover + proc.stdout.read(want * bytes_per_frame - len(leftover))
            usable = len(chunk) - len(chunk) % bytes_per_frame
            chunk, leftover = chunk[:usable], chunk[usable:]
            if not chunk:
                reached_eof = True
                break
            block = np.frombuffer(chunk, dtype=np.float32).reshape(-1, channels).T.copy()
            if remaining is not None:
                remaining -= block.shape[1]
            yield block
    finally:
        if not reached_eof:  # the consumer stopped early, or the range is read: stop ffmpeg
            proc.kill()
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if reached_eof and code != 0:
        reason = (err.splitlines() or ["unknown error"])[-1][:160]
        raise AudioError(f"{path}: ffmpeg could not decode it ({reason})")


def iter_blocks(path: str | Path, block_frames: int = 65536, start: int = 0,
                frames: int = -1, info: AudioInfo | None = None) -> Iterator[np.ndarray]:
    """Yield float32 blocks of shape (channels, <= block_frames) at the file's own rate.

    Every block is checked for NaN/Inf samples. ``frames=-1`` reads to the end.
    """
    path = Path(path)
    info = info or audio_info(path)
    if info.channels <= 0:
        raise AudioError(f"{path}: no audio channels")
    if info.backend == "soundfile":
        blocks = _soundfile_blocks(path, block_frames, start, frames)
    else:
        blocks = _ffmpeg_blocks(path, info.channels, block_frames, start, frames, info.sample_rate)
    for block in blocks:
        _check_finite(block, path)
        yield block


def read_audio(path: str | Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Read a whole file (or a range) into memory: ``(array (channels, time), sample_rate)``."""
    info = audio_info(path)
    blocks = list(iter_blocks(path, 1 << 20, start, frames, info))
    if not blocks:
        return np.zeros((info.channels, 0), dtype=np.float32), info.sample_rate
    return np.concatenate(blocks, axis=1), info.sample_rate


def rewrite_audio(src: str | Path, dst: str | Path, subtype: str, transform=None,
                  block_frames: int = 1 << 18, info: AudioInfo | None = None) -> Path:
    """Copy ``src`` to ``dst`` block by block in another subtype, atomically.

    ``transform`` maps each float32 (channels, time) block before it is written (gain, clamp).
    ``info`` describes ``src`` when its name says nothing (a scratch file ending in ``.tmp``).
    """
    info = info or audio_info(src)
    with AudioWriter(dst, info.sample_rate, info.channels, subtype) as writer:
        for block in iter_blocks(src, block_frames, info=info):
            writer.write(transform(block) if transform else block)
    return Path(dst)
