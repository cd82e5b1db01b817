"""`stemsplit ensemble`: flags -> pipelines.ensemble.write_ensemble; progress lines, then the fit."""
from __future__ import annotations

from pathlib import Path

import typer

from stemsplit.cli.common import TRAIN_MODULES, DeviceOpt, app, console, require_extra, user_errors
from stemsplit.cli.flags import check_number
from stemsplit.settings import check_device_name


@app.command("ensemble")
def ensemble(
    members: list[str] = typer.Argument(..., metavar="MEMBER",
                                        help="Two or more member models: shipped names or .ckpt paths."),
    data: Path = typer.Option(..., "--data", "-d", help="Prepared dataset folder (stemsplit prepare) to fit on."),
    out: Path = typer.Option(..., "--out", "-o", help="The ensemble checkpoint to write (replaced atomically)."),
    split: str = typer.Option("valid", "--split", help="The dataset split whose tracks fit the weights."),
    step: float = typer.Option(0.05, "--step", help="Weight grid step; must divide 1 (0.05: 21 weights per member)."),
    wiener_iterations: int = typer.Option(0, "--wiener-iterations",
                                          help="The ensemble's own default Wiener post-filter iterations "
                                          "(the fit itself uses none)."),
    device: DeviceOpt = "auto",
) -> None:
    """Fit per-stem weights of trained models on a split and write them as one ensemble model."""
    require_extra("ensemble", *TRAIN_MODULES)

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    with user_errors():
        check_number("--step", step, 0, 1, low_open=True, hint="e.g. 0.05 or 0.1")
        check_number("--wiener-iterations", wiener_iterations, 0)
        check_device_name(device)
        from stemsplit.pipelines.ensemble import write_ensemble  # torch: after the extra check

        fit = write_ensemble(members, data, out, split=split, step=step, wiener_iterations=wiener_iterations,
                             device=device, say=say)
    stems = list(fit.ensemble_scores)
    say(f"mean gSDR (dB) on {split}, {fit.tracks} track(s): " + "  ".join(stems))
    width = max(len(m) for m in [*members, "ensemble"])
    for member, scores in fit.member_scores.items():
        say(f"  {member:{width}}  " + "  ".join(f"{scores[s]:6.2f}" for s in stems))
    say(f"  {'ensemble':{width}}  " + "  ".join(f"{fit.ensemble_scores[s]:6.2f}" for s in stems))
    for member, row in zip(members, fit.weights):
        say(f"weights of {member}: " + ", ".join(f"{s} {w:g}" for s, w in zip(stems, row)))
    say(f"wrote {out}")
