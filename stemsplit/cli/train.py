"""`stemsplit train`: not available in this build yet (its issue has not landed)."""
from __future__ import annotations

import typer

from stemsplit.cli.common import app, fail


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Not available yet."""
    fail("'stemsplit train' is not available yet in this version of stemsplit", code=3)
