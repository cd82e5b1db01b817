"""`stemsplit train`: flags -> TrainOptions -> pipelines.train.run_train.

Also the torchrun entry: ``torchrun --nproc_per_node=N -m stemsplit train ...``.
Exit codes: 0 done, 2 bad input (config, data, checkpoint), 1 training diverged (non-finite
loss), 130 / 143 stopped by SIGINT / SIGTERM after saving ``last.ckpt``.
"""
from __future__ import annotations

import os
from pathlib import Path

import typer

from stemsplit.cli.common import SET_HELP, TRAIN_MODULES, DeviceOpt, app, console, is_tty, require_extra, user_errors


@app.command("train")
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="Training config YAML (configs/*.yaml)."),
    data: Path | None = typer.Option(None, "--data", "-d",
                                        help="Prepared dataset folder (stemsplit prepare); its valid split validates."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder to create."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    overrides: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    device: DeviceOpt = "auto",
) -> None:
    """Train a separation model from a config; resumable, and multi-GPU under torchrun."""
    require_extra("train", *TRAIN_MODULES, "matplotlib")  # matplotlib: the run folder's curves
    from stemsplit.pipelines.train import TrainOptions, run_train
    from stemsplit.training.signals import EXIT_CODES

    opts = TrainOptions(config=config, data=data, out=out, resume=resume, overrides=list(overrides or []),
                        device=device, tty=is_tty(), console=console)
    with user_errors():  # a diverged run exits 1, bad input 2
        result = run_train(opts)
    if result.stopped_by in EXIT_CODES:
        raise typer.Exit(EXIT_CODES[result.stopped_by])
    if result.stopped_by != "already_finished" and os.environ.get("RANK", "0") == "0":
        best = f"best mean SDR {result.best_score:.2f} dB at step {result.best_step}" if result.best_step >= 0 else ""
        console.print(f"done: {result.step} steps ({result.stopped_by}); {best}; "
                      f"{result.run_dir / 'best.ckpt'}", highlight=False, soft_wrap=True)
