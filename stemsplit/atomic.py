"""Files that are either complete or absent: write beside the target, then rename over it.

A killed process leaves at most a hidden ``.<name>.*.tmp`` file, never a half-written file
under the real name.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


def _mode_from_umask() -> int:
    mask = os.umask(0)  # the only way to read the umask is to set it; read once, at import
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _mode_from_umask()


def mkstemp_beside(path: str | Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A hidden temporary file in ``path``'s folder: ``(fd, name)``. It gets the permissions a
    plain ``open()`` would give, not mkstemp's 0600, so a renamed stem or checkpoint can be read
    by whoever could read the folder's other files."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, fsync: bool = False, **open_kwargs) -> Iterator[IO]:
    """Yield a temporary file in ``path``'s folder; on a clean exit it replaces ``path``,
    on any error it is deleted. ``fsync`` flushes it to disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_beside(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json_atomic(path: str | Path, data: Any, fsync: bool = False) -> None:
    with atomic_open(path, "w", fsync=fsync) as fh:
        json.dump(data, fh, indent=1, allow_nan=False)
