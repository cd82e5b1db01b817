"""The ``stemsplit`` command: one Typer app, one module per subcommand.

Each subcommand parses flags and calls ``stemsplit.pipelines.<name>``; no work happens here.
"""
from __future__ import annotations

import sys

from stemsplit.cli import ensemble, evaluate, export, models, prepare, separate, stream, train  # noqa: F401  (register commands)
from stemsplit.cli.common import app
from stemsplit.heap import apply_heap_policy


def subcommand(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the arguments after the program name), if any: the
    first argument that is not an option (the root's only option, --version, takes no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main() -> None:
    apply_heap_policy(subcommand(sys.argv[1:]))  # process-wide, so here, where the process is ours
    app()


__all__ = ["app", "main"]
