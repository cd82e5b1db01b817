"""Shared CLI pieces: the Typer app, one-line errors, config loading, progress display."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stemsplit.config import Config, ConfigError, load_config

app = typer.Typer(
    name="stemsplit",
    help="Separate music into stems (vocals, drums, bass, other).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False)

SET_HELP = "Override a config value, e.g. --set train.lr=3e-4 (repeatable)."


class ProgressUI:
    """Transient rich bars on a terminal, none otherwise; subclasses add their own tasks."""

    def __init__(self, tty: bool):
        self.tty = tty
        self.progress: Progress | None = None

    def __enter__(self):
        if self.tty:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()


class UserError(Exception):
    """An error caused by input the user can fix; printed as one line, exit code 2."""


def fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def config_or_exit(path: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(path, overrides or [])
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable: fail raises


def is_tty() -> bool:
    return console.is_terminal


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors the user can act on into one line on stderr and exit code 2."""
    from stemsplit.audio.io import AudioError
    from stemsplit.checkpoint import CheckpointError
    from stemsplit.data.cache import DataError

    try:
        yield
    except (UserError, ConfigError, CheckpointError, AudioError, DataError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130)
