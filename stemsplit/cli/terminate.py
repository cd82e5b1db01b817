"""SIGTERM for commands that stop at once (``separate``): unwind, clean up, exit 143.

Python's default SIGTERM ends the process on the spot, so no ``finally`` block runs and the
temporary files of the stem being written stay behind. Here SIGTERM raises ``Terminated``
instead: every writer's ``finally`` removes its temporary file, then the command prints one
line and exits 143 (128 + 15, what shells report for SIGTERM). ``train`` has its own handling
(finish the step, save, exit 143) in ``stemsplit.training.signals``.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from stemsplit.cli.common import console

EXIT_SIGTERM = 143


class Terminated(BaseException):
    """Raised by the SIGTERM handler; a BaseException so no ``except Exception`` swallows it."""


@contextmanager
def exit_on_sigterm(hint: str) -> Iterator[None]:
    """Inside the block, SIGTERM unwinds it; then ``stopped by SIGTERM; <hint>`` and exit 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    except Terminated:
        console.print(f"stopped by SIGTERM; {hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
