"""Shared CLI pieces: the Typer app, one-line errors, config loading, progress display."""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stemsplit.config import Config, ConfigError, load_config
from stemsplit.errors import MissingExtraError, StemsplitError
from stemsplit.settings import EngineSettings

app = typer.Typer(
    name="stemsplit",
    help="Separate music into stems (vocals, drums, bass, other).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from stemsplit.version import __version__

        typer.echo(f"stemsplit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print stemsplit's version and exit.")] = False) -> None:
    """Separate music into stems (vocals, drums, bass, other)."""

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


class UserError(StemsplitError):
    """An error caused by input the user can fix; printed as one line, exit code 2."""


def fail(message: str, code: int = 2) -> None:
    # escaped: a message may hold brackets, e.g. pip install ".[train]", that rich would eat as markup
    console.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)
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
    """Turn every StemsplitError into one line on stderr and its exit code (2 for bad input)."""
    try:
        yield
    except StemsplitError as exc:
        fail(one_line(exc), code=exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130) from None


TRAIN_MODULES = ("torch", "torchaudio")  # every command of the train extra imports both


def require_extra(command: str, *modules: str) -> None:
    """Exit 2 with one line naming `pip install ".[train]"` when a module of the train
    extra is missing. The base install (separate on ONNX Runtime) has no torch; prepare, train,
    evaluate and export need it. Finding a module does not import it, so this costs nothing."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a finder that refuses it, or a broken half-install
            found = False
        if not found:
            with user_errors():
                raise MissingExtraError(command, name)


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- the separation flags: one option group shared by `separate` and `evaluate` ---------------

PANEL = "Separation engine"
SegmentOpt = Annotated[float | None, typer.Option(
    "--segment", help="Segment length in seconds (default: the model's own).", rich_help_panel=PANEL)]
OverlapOpt = Annotated[float | None, typer.Option(
    "--overlap", help="Segment overlap as a fraction in [0, 1) (default: the model's own).",
    rich_help_panel=PANEL)]
ShiftsOpt = Annotated[int | None, typer.Option(
    "--shifts", help="Test-time augmentation: average over N time-shifted passes (sub-hop shifts; for Demucs "
    "models, seeded offsets of up to 0.5 s). Default: the model's own (Demucs: 1, others: 0).",
    rich_help_panel=PANEL)]
WienerOpt = Annotated[int | None, typer.Option(
    "--wiener-iterations", help="Multichannel Wiener post-filter iterations (default: the model's own, "
    "separate.wiener_iterations).", rich_help_panel=PANEL)]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]


def engine_settings(segment: float | None, overlap: float | None, shifts: int | None, wiener_iterations: int | None,
                    device: str) -> EngineSettings:
    """The shared flags as checked EngineSettings; a bad value exits 2 before any work starts."""
    with user_errors():
        return EngineSettings(segment_seconds=segment, overlap=overlap, shifts=shifts,
                              wiener_iterations=wiener_iterations, device=device).checked()
