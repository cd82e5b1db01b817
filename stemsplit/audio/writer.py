"""Writing audio files: complete or absent, with a one-line error for every failure.

Arrays are float32 ``(channels, time)``. Every writer streams into a temporary file beside its
target (``stemsplit.atomic`` names it) and renames it into place only when complete; a failed
write, a full disk, an exception or SIGTERM (raised as an exception by the CLI) removes it.
Reading (and ``rewrite_audio``) is in ``stemsplit.audio.io``, which re-exports these names.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from stemsplit.atomic import mkstemp_beside
from stemsplit.audio.errors import AudioError, DiskFullError

# --set audio output: (container, subtype) per output choice
SUBTYPES = {("wav", 16): "PCM_16", ("wav", 24): "PCM_24", ("wav", 32): "FLOAT",
            ("flac", 16): "PCM_16", ("flac", 24): "PCM_24"}


def subtype_for(fmt: str, bits: int) -> str:
    try:
        return SUBTYPES[(fmt, bits)]
    except KeyError:
        valid = ", ".join(f"{f}/{b}" for f, b in SUBTYPES)
        raise AudioError(f"output format {fmt}/{bits}-bit is not supported; choose one of {valid}") from None


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXTS = ("No space left", "Disk quota", "File too large")


def _libsndfile_reason(fh: sf.SoundFile | None, exc: BaseException) -> str:
    """libsndfile's own reason for a failed write ("System error : No space left on device.");
    the exception itself only says "System error"."""
    try:
        handle = fh._file if fh is not None else None  # private, hence the fallback below
        if handle is not None:
            return sf._ffi.string(sf._snd.sf_strerror(handle)).decode(errors="replace").strip()
    except Exception:  # noqa: BLE001 - another soundfile version: keep the generic text
        pass
    return str(exc).strip() or type(exc).__name__


def write_failure(path: Path, exc: BaseException, fh: sf.SoundFile | None = None) -> AudioError:
    """One-line AudioError for a failed write of ``path``; DiskFullError when the device is full."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        full = exc.errno in _FULL_ERRNOS
    else:
        reason = _libsndfile_reason(fh, exc) if not isinstance(exc, AssertionError) else "short write"
        full = any(text in reason for text in _FULL_TEXTS)
    if full:
        return DiskFullError(f"{path}: disk full while writing ({reason}); nothing half-written was left "
                             "behind: free some space and run again")
    return AudioError(f"{path}: write failed ({reason})")


def to_pcm16(block: np.ndarray) -> np.ndarray:
    """(channels, time) float -> (time, channels) int16, as libsndfile 1.2 converts float to 16 bits
    (floor of x * 32768, saturated), in a third of its time: libsndfile converts sample by sample."""
    # written frame-major (C order) here, so that soundfile gets the interleaved layout it writes
    # without a transposing copy of its own
    scaled = np.empty(block.shape[::-1], np.float32)
    np.multiply(block.T, np.float32(32768), out=scaled)
    np.floor(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(np.int16)


class AudioWriter:
    """Stream blocks into ``path`` atomically: data goes to a temporary file beside it (see
    ``stemsplit.atomic`` for the name) and is renamed into place by ``commit()``; ``abort()``
    (or an exception in a ``with``) removes it. A failed write removes it too.

    ``scratch=True`` writes a private scratch file beside ``path`` instead, never renamed:
    ``commit()`` closes it and returns its path, and ``abort()`` deletes it once it is read.
    Errors always name ``path``.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, subtype: str = "FLOAT",
                 fmt: str | None = None, *, scratch: bool = False):
        self.path = Path(path)
        self.scratch = scratch
        fmt = (fmt or self.path.suffix.lstrip(".") or "wav").upper()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = mkstemp_beside(self.path, suffix=".stage.tmp" if scratch else ".tmp")
            os.close(fd)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise write_failure(self.path, exc) from None
            raise AudioError(f"{self.path.parent}: cannot write output here ({exc.strerror})") from None
        self.tmp = Path(tmp)
        try:
            self._fh = sf.SoundFile(str(self.tmp), "w", samplerate=int(sample_rate), channels=channels,
                                    subtype=subtype, format=fmt)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            self.tmp.unlink(missing_ok=True)
            raise AudioError(f"{self.path}: cannot open for writing ({exc})") from None
        self.frames = 0
        self._pcm16 = subtype == "PCM_16"

    def write(self, block: np.ndarray) -> None:
        """block: (channels, time) float. On failure the temporary file is removed at once."""
        try:
            self._fh.write(to_pcm16(block) if self._pcm16 else np.ascontiguousarray(block.T, dtype=np.float32))
        except (sf.LibsndfileError, RuntimeError, OSError, AssertionError) as exc:
            error = write_failure(self.path, exc, self._fh)
            self.abort()
            raise error from None
        self.frames += block.shape[1]

    def commit(self) -> Path:
        """Close the file; rename it into place (the scratch file: return its path)."""
        try:
            self._fh.close()  # writes the header: can fail on a full disk too
            if self.scratch:
                return self.tmp
            os.replace(self.tmp, self.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            self.abort()
            raise write_failure(self.path, exc) from None
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; safe to call more than once, and after commit."""
        try:
            if not self._fh.closed:
                self._fh.close()
        except (sf.LibsndfileError, RuntimeError, OSError):
            pass  # a full disk cannot take the header: the file goes anyway
        self.tmp.unlink(missing_ok=True)  # after a commit: gone already, or the scratch file

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_audio(path: str | Path, data: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write a whole (channels, time) array atomically."""
    with AudioWriter(path, sample_rate, data.shape[0], subtype) as writer:
        writer.write(data)
    return Path(path)
