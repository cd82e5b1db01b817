"""Files that are either complete or absent: write beside the target, then rename over it.

Every temporary file stemsplit writes has one recognisable name::

    .<target name>.stemsplit-<pid>-<random><suffix>      e.g. .vocals.wav.stemsplit-4711-k2j9x0aq.tmp

hidden (a leading dot, so folder walks and ``--skip-existing`` never take it for an output),
unique per process (the writer's pid plus a random part, so two runs on one folder never share
a name) and tied to its writer. A killed process leaves at most such a file, never a
half-written file under the real name; the next stemsplit process that writes into that folder
removes the ones whose writer is gone (``remove_stale_temps``).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_TAG = "stemsplit"
# .<target>.stemsplit-<pid>-<random>[.suffix...]; tempfile's random part is 8 of [a-z0-9_]
TEMP_RE = re.compile(r"^\..+\." + TEMP_TAG + r"-(?P<pid>\d+)-[a-z0-9_]{8}(\.[A-Za-z0-9]+)*$")
STALE_AGE_SECONDS = 24 * 3600  # a temp file untouched this long is stale even if its pid lives (reused pid)


def _mode_from_umask() -> int:
    mask = os.umask(0)  # the only way to read the umask is to set it; read once, at import
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _mode_from_umask()
_swept: set[str] = set()  # folders this process has already cleaned


def is_temp_name(name: str) -> bool:
    """True for a name of stemsplit's temporary-file scheme (whoever wrote it)."""
    return TEMP_RE.match(name) is not None


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    except OSError:
        return True
    return True


def remove_stale_temps(folder: str | Path, max_age: float = STALE_AGE_SECONDS) -> list[Path]:
    """Delete the temporary files in ``folder`` (not below it) whose writer is no longer running,
    or that nobody touched for ``max_age`` seconds; returns what was removed. Files of live
    writers (another run writing into the same folder right now) are left alone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = TEMP_RE.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stale = not _writer_alive(int(match["pid"])) or now - entry.stat().st_mtime > max_age
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already (another run cleaned it), or not ours to delete
            continue
    return removed


def remove_own_temps(path: str | Path) -> None:
    """Delete this process's temporary files for ``path``: a ``finally`` clause's last word, for
    the one that an interrupt (SIGINT, SIGTERM) created but no writer had taken charge of yet."""
    path = Path(path)
    prefix = f".{path.name}.{TEMP_TAG}-{os.getpid()}-"
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix) and TEMP_RE.match(entry.name):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def sweep_once(folder: str | Path) -> None:
    """``remove_stale_temps(folder)`` the first time this process writes into ``folder``."""
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        remove_stale_temps(folder)


def mkstemp_beside(path: str | Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, named by the scheme above: ``(fd, name)``.

    It gets the permissions a plain ``open()`` would give, not mkstemp's 0600, so a renamed
    stem or checkpoint can be read by whoever could read the folder's other files. The first
    call for a folder also removes the stale temporary files that dead runs left there.
    """
    path = Path(path)
    sweep_once(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{TEMP_TAG}-{os.getpid()}-", suffix=suffix, dir=path.parent)
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
