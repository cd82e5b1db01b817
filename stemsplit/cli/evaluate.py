"""`stemsplit evaluate`: flags -> EvaluateRequest -> pipelines.evaluate; progress and tables."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from stemsplit.cli.common import ProgressUI, app, console, fail, is_tty, user_errors


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
    model: Optional[list[str]] = typer.Option(None, "--model", "-m",
                                              help="Checkpoint path or shipped model name (repeatable)."),
    estimates: Optional[list[Path]] = typer.Option(
        None, "--estimates", help="Folder of separated stems DIR/<track>/<stem>.wav (repeatable)."),
    oracle: bool = typer.Option(False, "--oracle", help="Add the oracle-ibm, oracle-irm-mag, "
                                                        "oracle-irm-power and mixture rows."),
    metrics: str = typer.Option("both", help="fast (global SDR), museval (BSS Eval v4) or both."),
    out: Path = typer.Option(Path("eval"), "--out", "-o", help="Report folder (also the resume cache)."),
    workers: Optional[int] = typer.Option(None, help="Parallel tracks (default: the CPU count)."),
    stft_n_fft: Optional[int] = typer.Option(None, "--stft-n-fft",
                                             help="Oracle STFT size (default: first model's, else 4096)."),
    stft_hop: Optional[int] = typer.Option(None, "--stft-hop",
                                           help="Oracle STFT hop (default: first model's, else 1024)."),
    segment: Optional[float] = typer.Option(None, help="Separation segment in seconds (default: model's)."),
    overlap: Optional[float] = typer.Option(None, help="Segment overlap as a fraction in [0, 1)."),
    shifts: int = typer.Option(0, help="Test-time augmentation: average over N shifted passes."),
    wiener_iterations: Optional[int] = typer.Option(
        None, "--wiener-iterations",
        help="Multichannel Wiener post-filter iterations (default: each model's own)."),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto (use --workers 1 with a GPU)."),
    limit: Optional[int] = typer.Option(None, help="Score only the first N tracks of the split."),
    html: bool = typer.Option(False, "--html", help="Also write report.html: the scores, the boxplot and a "
                                                    "multitrack player per track (needs ffmpeg)."),
    html_tracks: str = typer.Option("10", "--html-tracks", metavar="N",
                                    help="With --html: players for the N tracks where the methods differ most."),
) -> None:
    """Score models against a dataset split with BSS Eval v4 and global SDR, beside oracle limits."""
    from stemsplit.data.cache import DataError
    from stemsplit.evaluation import EvaluationError
    from stemsplit.evaluation.methods import EngineSettings
    from stemsplit.evaluation.table import report_tables
    from stemsplit.pipelines.evaluate import EvaluateRequest
    from stemsplit.pipelines.evaluate import evaluate as run_evaluate

    if workers is not None and workers < 1:
        fail(f"--workers {workers}: must be at least 1")
    n_players = int(html_tracks) if html_tracks.strip().isdigit() else 0
    if n_players < 1:
        fail(f"--html-tracks {html_tracks!r}: must be a whole number of at least 1")
    with user_errors():
        try:
            req = EvaluateRequest(
                data=data, split=split, models=list(model or []), estimates=list(estimates or []),
                oracle=oracle, metrics=metrics.lower(), out=out, workers=workers, stft_n_fft=stft_n_fft,
                stft_hop=stft_hop, device=device, limit=limit, html=html, html_tracks=n_players,
                engine=EngineSettings(segment_seconds=segment, overlap=overlap, shifts=shifts,
                                      wiener_iterations=wiener_iterations))
            with EvaluateProgress(is_tty()) as ui:
                report = run_evaluate(req, ui)
        except (EvaluationError, DataError) as exc:
            fail(str(exc))
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
