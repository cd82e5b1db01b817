"""`stemsplit evaluate`: flags -> EvaluateRequest -> pipelines.evaluate; progress and tables."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from stemsplit.cli.common import (
    TRAIN_MODULES,
    DeviceOpt,
    OverlapOpt,
    ProgressUI,
    SegmentOpt,
    ShiftsOpt,
    WienerOpt,
    app,
    console,
    engine_settings,
    fail,
    is_tty,
    require_extra,
    user_errors,
)
from stemsplit.cli.flags import check_number

MAX_STFT = 1 << 16


class EvaluateProgress(ProgressUI):
    """A bar over (method, track) jobs on a terminal; one plain line per job otherwise."""

    def __init__(self, tty: bool):
        super().__init__(tty)
        self.task = None
        self.done = self.total = 0

    def planned(self, n_jobs: int, n_cached: int) -> None:
        self.total = n_jobs
        self.message(f"{n_jobs} (model, track) item(s) to score, {n_cached} reused from the cache")
        if self.progress:
            self.task = self.progress.add_task("scoring", total=max(n_jobs, 1))

    def job_done(self, outcome) -> None:
        self.done += 1
        if self.progress and self.task is not None:
            self.progress.advance(self.task)
        if outcome.error:
            console.print(f"[red]fail[/red] {outcome.error}" if self.tty else f"FAILED {outcome.error}",
                          soft_wrap=True, highlight=False, markup=self.tty)
        elif not self.tty:
            console.print(f"[{self.done}/{self.total}] {outcome.method} / {outcome.track} "
                          f"({outcome.result.seconds:.1f}s)", soft_wrap=True, highlight=False, markup=False)

    def message(self, text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False, markup=False)


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", "-d", help="A prepared dataset folder (stemsplit prepare)."),
    split: str = typer.Option("test", help="Which split of the dataset to score."),
    model: list[str] | None = typer.Option(None, "--model", "-m",
                                              help="Checkpoint path or shipped model name (repeatable)."),
    estimates: list[Path] | None = typer.Option(
        None, "--estimates", help="Folder of separated stems DIR/<track>/<stem>.wav (repeatable)."),
    oracle: bool = typer.Option(False, "--oracle", help="Add the oracle-ibm, oracle-irm-mag, "
                                                        "oracle-irm-power and mixture rows."),
    metrics: str = typer.Option("both", help="fast (global SDR), museval (BSS Eval v4) or both."),
    out: Path = typer.Option(Path("eval"), "--out", "-o", help="Report folder (also the resume cache)."),
    workers: int | None = typer.Option(None, help="Parallel tracks (default: the CPU count)."),
    stft_n_fft: int | None = typer.Option(None, "--stft-n-fft",
                                             help="Oracle STFT size (default: first model's, else 4096)."),
    stft_hop: int | None = typer.Option(None, "--stft-hop",
                                           help="Oracle STFT hop (default: first model's, else 1024)."),
    segment: SegmentOpt = None,
    overlap: OverlapOpt = None,
    shifts: ShiftsOpt = None,
    wiener_iterations: WienerOpt = None,
    device: DeviceOpt = "auto",
    limit: int | None = typer.Option(None, help="Score only the first N tracks of the split."),
    html: bool = typer.Option(False, "--html", help="Also write report.html: the scores, the boxplot and a "
                                                    "multitrack player per track (needs ffmpeg)."),
    html_tracks: str = typer.Option("10", "--html-tracks", metavar="N",
                                    help="With --html: players for the N tracks where the methods differ most."),
) -> None:
    """Score models against a dataset split with BSS Eval v4 and global SDR, beside oracle limits."""
    # matplotlib draws the boxplot; museval is BSS Eval, not needed for --metrics fast
    require_extra("evaluate", *TRAIN_MODULES, "matplotlib", *(() if metrics.lower() == "fast" else ("museval",)))
    if workers is not None and workers < 1:
        fail(f"--workers {workers}: must be at least 1")
    with user_errors():  # every numeric flag, before any work and before torch loads
        check_number("--limit", limit, 1, hint="leave it out to score every track of the split")
        check_number("--stft-n-fft", stft_n_fft, 16, MAX_STFT)
        check_number("--stft-hop", stft_hop, 1, stft_n_fft or MAX_STFT)
    n_players = int(html_tracks) if html_tracks.strip().isdigit() else 0
    if n_players < 1:
        fail(f"--html-tracks {html_tracks!r}: must be a whole number of at least 1")
    engine = engine_settings(segment, overlap, shifts, wiener_iterations, device)
    from stemsplit.evaluation.table import report_tables
    from stemsplit.pipelines.evaluate import EvaluateRequest
    from stemsplit.pipelines.evaluate import evaluate as run_evaluate

    with user_errors():
        req = EvaluateRequest(
            data=data, split=split, models=list(model or []), estimates=list(estimates or []),
            oracle=oracle, metrics=metrics.lower(), out=out, workers=workers, stft_n_fft=stft_n_fft,
            stft_hop=stft_hop, limit=limit, engine=engine, html=html, html_tracks=n_players)
        with EvaluateProgress(is_tty()) as ui:
            report = run_evaluate(req, ui)
    stdout = Console(highlight=False)
    for table in report_tables(report):
        stdout.print(table)
    console.print(f"reports in {out}/: summary.csv, summary.md, tracks.csv, scores.json"
                  + (", sdr_boxplot.png" if "boxplot" in report.files else "")
                  + (", report.html (open it in a browser)" if "html" in report.files else ""),
                  highlight=False, soft_wrap=True)
    if report.errors:
        console.print(f"{len(report.errors)} item(s) failed (the other scores are kept and cached):",
                      highlight=False)
        for error in report.errors:
            console.print(f"  {error}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1)
