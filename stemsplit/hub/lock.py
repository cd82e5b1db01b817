"""An exclusive lock per cache target, held by one process at a time, released when it dies.

``file_lock(path)`` locks ``path`` (a lock file beside the target) with the operating system's
advisory lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), so a killed holder
never leaves a stale lock behind. The holder deletes the lock file on release; a waiter that
then wakes up holding the deleted file notices (its inode is no longer the path's) and locks
again, so two processes never both believe they hold it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

POLL_SECONDS = 0.05


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


@contextmanager
def file_lock(path: str | Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock ``path`` for the ``with`` block; waits as long as another process
    holds it, calling ``on_wait()`` once when it has to wait. OSError if ``path`` cannot be made."""
    path = Path(path)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while not _try_lock(fd):
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                time.sleep(POLL_SECONDS)
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # locked a lock file that its holder deleted meanwhile: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(path)  # before unlocking: a waiter then sees its file is gone and locks anew
        except OSError:
            pass
        try:
            _unlock(fd)
        finally:
            os.close(fd)
