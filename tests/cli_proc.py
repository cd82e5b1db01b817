"""Run the real ``stemsplit`` command in child processes, as a user's shell would.

The reliability tests send signals to these processes, start two at once, or run them under
``fault_wrapper.py``; in-process CliRunner calls could do none of that.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FAULT_WRAPPER = TESTS / "fault_wrapper.py"
TIMEOUT = 180  # seconds: a hung child fails the test instead of hanging the suite


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="250", NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def command(*args, wrapper: list[str] | None = None) -> list[str]:
    head = [sys.executable, str(FAULT_WRAPPER), *wrapper, "--"] if wrapper else [sys.executable, "-m", "stemsplit"]
    return [*head, *map(str, args)]


@dataclass
class Done:
    args: list[str]
    code: int
    out: str  # stdout and stderr together

    def lines(self, text: str) -> list[str]:
        return [line for line in self.out.splitlines() if text in line]

    def __str__(self) -> str:
        return f"exit {self.code} for {' '.join(self.args[-12:])}\n{self.out}"


def _default_sigint() -> None:
    # a suite started in the background (`pytest &`) ignores SIGINT, and children inherit that:
    # the CLI would then rightly ignore the SIGINT a test sends, as a background job should
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args, cwd: Path, wrapper: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(command(*args, wrapper=wrapper), cwd=cwd, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint)


def finish(proc: subprocess.Popen) -> Done:
    out, _ = proc.communicate(timeout=TIMEOUT)
    return Done(proc.args, proc.returncode, out)


def run(*args, cwd: Path, wrapper: list[str] | None = None) -> Done:
    return finish(start(*args, cwd=cwd, wrapper=wrapper))


def run_all(cases: list[list], cwd: Path, parallel: int = 4) -> list[Done]:
    """Each argument list as its own ``stemsplit`` process, a few at a time; results in order."""
    results: list[Done | None] = [None] * len(cases)
    running: list[tuple[int, subprocess.Popen]] = []
    for i, args in enumerate(cases):
        running.append((i, start(*args, cwd=cwd)))
        if len(running) >= parallel:
            j, proc = running.pop(0)
            results[j] = finish(proc)
    for j, proc in running:
        results[j] = finish(proc)
    return results  # type: ignore[return-value]


def wait_for(predicate, proc: subprocess.Popen, what: str, limit: float = TIMEOUT) -> None:
    """Poll until ``predicate()`` holds; fail if the process ends first (the test would be moot)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{out}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
