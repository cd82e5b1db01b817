"""SIGINT / SIGTERM during training: finish the current step, save, exit cleanly.

The first signal only sets a flag that the loop checks between steps; a second SIGINT
raises KeyboardInterrupt at once for someone who really wants out (``last.ckpt`` then loses
at most ``train.checkpoint_every_steps`` steps, as after SIGKILL).
"""
from __future__ import annotations

import signal
import threading
from types import FrameType


class StopRequest:
    """Context manager installing the handlers (main thread only) and restoring the old ones."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, name: str) -> None:
        self.signal_name = self.signal_name or name

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
