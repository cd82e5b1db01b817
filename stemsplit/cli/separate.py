"""`stemsplit separate`: flags -> SeparateRequest -> pipelines.separate; progress display."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from stemsplit.cli.common import (
    PANEL,
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
    user_errors,
)
from stemsplit.cli.flags import check_choice, check_number
from stemsplit.separation.runtimes import check_runtime


class RichUI(ProgressUI):
    """Bars for files and segments on a terminal; one plain line per file otherwise."""

    def __init__(self, tty: bool):
        super().__init__(tty)
        self.files_task = self.seg_task = None

    def batch_started(self, n_files: int) -> None:
        if self.progress:
            self.files_task = self.progress.add_task("files", total=n_files)

    def file_started(self, path: Path, n_segments: int) -> None:
        if self.progress:
            if self.seg_task is not None:
                self.progress.remove_task(self.seg_task)
            self.seg_task = self.progress.add_task(f"  {path.name[:40]}", total=max(n_segments, 1))

    def segment_done(self, path: Path, done: int) -> None:
        if self.progress and self.seg_task is not None:
            self.progress.update(self.seg_task, completed=done)

    def file_finished(self, path: Path, ok: bool, message: str) -> None:
        if self.progress and self.files_task is not None:
            self.progress.advance(self.files_task)
        if ok:
            console.print(f"[green]ok[/green]   {path}: {message}" if self.tty else f"ok {path}: {message}",
                          soft_wrap=True, highlight=False, markup=self.tty)
        else:
            console.print(f"[red]fail[/red] {message}" if self.tty else f"FAILED {message}",
                          soft_wrap=True, highlight=False, markup=self.tty)

    def message(self, text: str) -> None:
        console.print(f"note: {text}", soft_wrap=True, highlight=False, markup=False)


def _list_models() -> None:
    from stemsplit.pretrained import list_models

    models = list_models()
    if not models:
        console.print("No trained models ship with this build yet; pass --model path/to/model.ckpt.")
        return
    rows = []
    for m in models:
        scores = m.get("valid_sdr") or {}
        rows.append([m["name"] + (" (default)" if m["default"] else ""), m.get("architecture", "?"),
                     f"{m['size_mb']} MB", ",".join(m.get("stems", [])),
                     " ".join(f"{k} {v:.2f}" for k, v in scores.items()) or "-",
                     f"{m['ood_gsdr_dbo']:.2f}" if m.get("ood_gsdr_dbo") is not None else "-",
                     f"{m['speed_x_realtime']:.0f}x" if m.get("speed_x_realtime") else "-",
                     m.get("trained_on", "-")])
    header = ["name", "architecture", "size", "stems", "valid SDR (dB) per stem",
              "out of domain d/b/o gSDR (dB)", "speed (x real time)", "trained on"]
    if not is_tty():  # tab-separated for scripts
        for row in [header] + rows:
            typer.echo("\t".join(row))
        return
    table = Table(title="shipped models")
    for col in header:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    licences = sorted({m["licence"] for m in models if m.get("licence")})
    for text in licences:
        console.print(f"training data licence: {text}", soft_wrap=True, markup=False)
    console.print(_architectures_line(), soft_wrap=True, markup=False, highlight=False)


def _architectures_line() -> str:
    """The families `stemsplit train` can build, from the model registry."""
    from stemsplit.models import model_class, names

    kinds = [f"{n} ({model_class(n).input_kind} -> {model_class(n).output_kind})" for n in names()]
    return "architectures to train (stemsplit train --config configs/<name>.yaml): " + ", ".join(kinds)


@app.command()
def separate(
    inputs: list[Path] = typer.Argument(None, help="Audio files and/or folders (walked recursively)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Shipped model name or checkpoint path."),
    out: Path = typer.Option(Path("separated"), "--out", "-o", help="Output folder."),
    filename: str = typer.Option("{model}/{track}/{stem}.{ext}", help="Output path template under --out."),
    stems: str | None = typer.Option(None, help="Comma-separated subset of stems, e.g. vocals."),
    residual: bool = typer.Option(False, help="Also write mixture minus the chosen stems "
                                              "(no_<stem> or accompaniment)."),
    fmt: str = typer.Option("wav", "--format", help="wav or flac."),
    bits: int = typer.Option(16, help="16 or 24 (int), or 32 (float, wav only)."),
    clip: str = typer.Option("rescale", help="Clipping protection: rescale, clamp or none."),
    segment: SegmentOpt = None,
    overlap: OverlapOpt = None,
    shifts: ShiftsOpt = 0,
    wiener_iterations: WienerOpt = None,
    device: DeviceOpt = "auto",
    runtime: str = typer.Option("auto", "--runtime", help="What runs the network: onnx (ONNX Runtime, no torch "
                                "needed), torch, or auto (onnx when the model has an ONNX form and no GPU is "
                                "asked for, else torch).", rich_help_panel=PANEL),
    jobs: int | None = typer.Option(None, help="CPU threads for the network (torch or ONNX Runtime)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip files whose outputs all exist."),
    shard: str | None = typer.Option(None, help="i/N: process only the i-th of N interleaved shares."),
    list_models: bool = typer.Option(False, "--list-models", help="List the shipped models and exit."),
) -> None:
    """Separate songs into stems: `stemsplit separate song.mp3`."""
    from stemsplit.heap import map_large_allocations

    map_large_allocations()  # this process is ours: a flat heap over a long separation (stemsplit/heap.py)
    if list_models:
        _list_models()
        return
    if not inputs:
        fail("no input given; usage: stemsplit separate SONG_OR_FOLDER [...]")
    engine = engine_settings(segment, overlap, shifts, wiener_iterations, device)  # before torch loads
    with user_errors():
        check_number("--jobs", jobs, 1, 1024)
        check_choice("--bits", str(bits), ("16", "24", "32"))
        check_runtime(runtime, device)
    from stemsplit.cli.terminate import exit_on_sigterm
    from stemsplit.pipelines.separate import SeparateRequest, parse_shard, run_separate

    with user_errors(), exit_on_sigterm("no temporary files were left; run again with --skip-existing to resume"):
        req = SeparateRequest(
            inputs=list(inputs), out_dir=out, filename=filename, model=model,
            stems=[s.strip() for s in stems.split(",") if s.strip()] if stems else None,
            residual=residual, fmt=fmt.lower(), bits=bits, clip=clip, engine=engine, runtime=runtime,
            jobs=jobs, skip_existing=skip_existing, shard=parse_shard(shard) if shard else None)
        with RichUI(is_tty()) as ui:
            summary = run_separate(req, ui)
    n_ok, n_skip, n_fail = len(summary.done), len(summary.skipped), len(summary.failed)
    rate = f", {summary.audio_seconds / summary.seconds:.1f}x real time" if summary.seconds and n_ok else ""
    console.print(f"separated {n_ok} file(s), skipped {n_skip}, failed {n_fail} in {summary.seconds:.1f}s{rate}",
                  highlight=False)
    if n_fail:
        console.print("failed:", highlight=False)
        for path, msg in summary.failed:
            console.print(f"  {msg}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1)
