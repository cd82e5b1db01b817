"""Test-only: run the stemsplit CLI with a write fault, as ``python fault_wrapper.py MODE N -- ARGS``.

- ``enospc N``: the disk is full after N more bytes of audio: every ``SoundFile.write`` that
  would go past it raises ``OSError(ENOSPC)``, as ``write(2)`` does on a full disk.
- ``fsize N``: a real kernel limit instead (``RLIMIT_FSIZE``): no file may grow past N bytes,
  so libsndfile's own ``write(2)`` fails with EFBIG and stemsplit sees libsndfile's error,
  exactly the path a real full disk takes.
- ``slow N``: every ``SoundFile.write`` first sleeps N milliseconds, so a run's temporary files
  live long enough for a test to signal it mid-write rather than race the rename.

Nothing in the package knows about this file; it patches from outside and then calls
``stemsplit.cli.main()``.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import sys


def main() -> None:
    split = sys.argv.index("--")
    mode, amount = sys.argv[1], int(sys.argv[2])
    cli_args = sys.argv[split + 1:]
    if mode == "enospc":
        import soundfile as sf

        original = sf.SoundFile.write
        left = {"bytes": amount}

        def write(self, data):
            size = getattr(data, "nbytes", 0)
            if size > left["bytes"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
            left["bytes"] -= size
            return original(self, data)

        sf.SoundFile.write = write
    elif mode == "slow":
        import time

        import soundfile as sf

        original = sf.SoundFile.write

        def write(self, data):
            time.sleep(amount / 1000)
            return original(self, data)

        sf.SoundFile.write = write
    elif mode == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (amount, amount))
    else:
        raise SystemExit(f"unknown fault mode {mode!r}")
    from stemsplit.cli import main as cli_main

    sys.argv = ["stemsplit", *cli_args]
    cli_main()


if __name__ == "__main__":
    main()
