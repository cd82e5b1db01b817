"""`stemsplit models pull NAME... [--to DIR]`: flags -> pipelines.pull, with progress on stderr.

Rich download bars on a terminal; plain lines (start, retry, verified) in logs. Exit code 0 when
every model is in the cache; with one name, a failure exits with its error's code (2, as
`separate --model NAME` would); with several names each failure is one line, the others go on,
and the exit code is 1.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from stemsplit.cli.common import app, console, is_tty, one_line, user_errors

models_app = typer.Typer(name="models", no_args_is_help=True, add_completion=False,
                         help="Public pretrained models (separate --list-models): fetch them ahead of time.")
app.add_typer(models_app, name="models")


@models_app.callback()
def _models() -> None:
    """Public pretrained models: see `stemsplit separate --list-models` for the catalogue."""


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


class PullProgress:
    """A FetchEvent callback: a transient bar per file on a TTY, plain lines otherwise."""

    def __init__(self, tty: bool, progress: Progress | None = None):
        """``progress``: bars of another display to add the download bars to (separate's)."""
        self.tty = tty
        self.progress: Progress | None = progress
        self._own = False
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self):
        if self.tty and self.progress is None:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True)
            self.progress.start()
            self._own = True
        return self

    def __exit__(self, *exc):
        if self.progress and self._own:
            self.progress.stop()

    def say(self, text: str) -> None:
        (self.progress.console if self.progress else console).print(text, markup=False, highlight=False,
                                                                    soft_wrap=True)

    def __call__(self, event) -> None:
        key, label = (event.model, event.file), f"{event.model}/{event.file}"
        if event.kind == "start":
            size = "" if event.total is None else f" {_mb(event.total)}"
            verb = f"resuming at {_mb(event.done)} of" if event.done else "downloading"
            if self.progress:
                if key not in self.tasks:
                    self.tasks[key] = self.progress.add_task(label, total=event.total)
                self.progress.update(self.tasks[key], completed=event.done, total=event.total)
            if event.done or not self.progress:
                self.say(f"{label}: {verb}{size} from {event.url}")
        elif event.kind == "bytes":
            if self.progress and key in self.tasks:
                self.progress.update(self.tasks[key], completed=event.done, total=event.total)
        elif event.kind == "done":
            if self.progress and key in self.tasks:
                self.progress.remove_task(self.tasks.pop(key))
            self.say(f"{label}: {_mb(event.done)}, checksum verified")
        else:  # retry, fallback, wait
            self.say(f"{label}: {event.message}")


@models_app.command()
def pull(
    names: list[str] = typer.Argument(..., help="Catalogue names, as separate --list-models lists them."),
    to: Path | None = typer.Option(None, "--to", help="Pull into this folder (then copy it and set "
                                   "STEMSPLIT_CACHE to it); default: the cache folder ($STEMSPLIT_CACHE, else "
                                   "$XDG_CACHE_HOME/stemsplit, else ~/.cache/stemsplit)."),
) -> None:
    """Download and verify models into the cache now, e.g. for an air-gapped GPU server."""
    from stemsplit.cli.terminate import exit_on_sigterm
    from stemsplit.hub.cache import cache_root
    from stemsplit.pipelines.pull import pull as run_pull

    resume = "what arrived was kept; run the same pull again to resume it"
    with user_errors(), exit_on_sigterm(resume), PullProgress(is_tty()) as ui:
        results = run_pull(names, to, events=ui)
    root = cache_root(to)
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.ok:
            state = "already in" if r.already_cached else "pulled into"
            console.print(f"{r.name}: {state} {root / r.name} ({_mb(r.size_bytes)})", markup=False, highlight=False,
                          soft_wrap=True)
        else:
            console.print(f"error: {r.name}: {one_line(r.error)}", markup=False, highlight=False, soft_wrap=True)
    if to is not None and len(failed) < len(results):
        console.print(f"to use these on another machine: copy {root} there and set STEMSPLIT_CACHE to the copy",
                      markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(failed[0].error.exit_code if len(results) == 1 else 1)
