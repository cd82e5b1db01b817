"""The ``stemsplit`` command: one Typer app, one module per subcommand.

Each subcommand parses flags and calls ``stemsplit.pipelines.<name>``; no work happens here.
"""
from __future__ import annotations

from stemsplit.cli import evaluate, export, prepare, separate, train  # noqa: F401  (register commands)
from stemsplit.cli.allocator import tune_allocator
from stemsplit.cli.common import app


def main() -> None:
    tune_allocator()
    app()


__all__ = ["app", "main"]
