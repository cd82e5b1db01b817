"""`stemsplit prepare`: not available in this build yet (its issue has not landed)."""
from __future__ import annotations

import typer

from stemsplit.cli.common import app, fail


@app.command("prepare", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def prepare(ctx: typer.Context) -> None:
    """Not available yet."""
    fail("'stemsplit prepare' is not available yet in this version of stemsplit", code=3)
