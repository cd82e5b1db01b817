"""`stemsplit separate`: flags -> SeparateRequest -> pipelines.separate; progress display."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

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
from stemsplit.heap import apply_heap_policy
from stemsplit.settings import check_runtime


class RichUI(ProgressUI):
    """Bars for files and segments on a terminal; one plain line per file otherwise."""

    def __init__(self, tty: bool):
        super().__init__(tty)
        self.files_task = self.seg_task = None
        self._downloads = None

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

    def model_ready(self, name: str, runtime: str) -> None:
        """The heap policy of separate on this runtime (process-wide: the CLI owns its process)."""
        apply_heap_policy("separate", runtime)

    def download(self, event) -> None:
        """A public model's first use: its download, as `stemsplit models pull` shows it."""
        from stemsplit.cli.models import PullProgress

        if self._downloads is None:
            self._downloads = PullProgress(self.tty, self.progress)
        self._downloads(event)


@app.command()
def separate(
    inputs: list[Path] = typer.Argument(None, help="Audio files and/or folders (walked recursively)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Shipped model name or checkpoint path."),
    out: Path = typer.Option(Path("separated"), "--out", "-o", help="Output folder."),
    filename: str = typer.Option("{model}/{track}/{stem}.{ext}", help="Output path template under --out; it "
                                 "stays inside --out (no absolute path, no '..')."),
    stems: str | None = typer.Option(None, help="Comma-separated subset of stems, e.g. vocals."),
    residual: bool = typer.Option(False, help="Also write mixture minus the chosen stems "
                                              "(no_<stem> or accompaniment)."),
    fmt: str = typer.Option("wav", "--format", help="wav or flac."),
    bits: int = typer.Option(16, help="16 or 24 (int), or 32 (float, wav only)."),
    clip: str = typer.Option("rescale", help="Clipping protection: rescale, clamp or none."),
    segment: SegmentOpt = None,
    overlap: OverlapOpt = None,
    shifts: ShiftsOpt = None,
    wiener_iterations: WienerOpt = None,
    device: DeviceOpt = "auto",
    runtime: str = typer.Option("auto", "--runtime", help="What runs the network: onnx (ONNX Runtime, no torch "
                                "needed), torch, or auto (onnx when the model has an ONNX form and no GPU is "
                                "asked for, else torch).", rich_help_panel=PANEL),
    jobs: int | None = typer.Option(None, help="CPU threads for the network (torch or ONNX Runtime)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip files whose outputs all exist."),
    shard: str | None = typer.Option(None, help="i/N: process only the i-th of N interleaved shares."),
    list_models: bool = typer.Option(False, "--list-models", help="List the shipped and the public models and exit."),
    benchmark: bool = typer.Option(False, "--benchmark", help="Measure this machine's speed for the model (--model; "
                                   "default: the default model) on a generated 60-s song, print it and exit."),
) -> None:
    """Separate songs into stems: `stemsplit separate song.mp3`."""
    if list_models:
        from stemsplit.cli.model_list import print_models

        print_models()
        return
    if benchmark:
        _benchmark(inputs, model, segment, overlap, shifts, wiener_iterations, device, runtime, jobs)
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
        for _path, msg in summary.failed:
            console.print(f"  {msg}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1)


def _benchmark(inputs, model, segment, overlap, shifts, wiener_iterations, device, runtime, jobs) -> None:
    """`--benchmark`: one generated song through the whole file-to-stems path, timed (pipelines/benchmark_speed.py)."""
    if inputs:
        fail("--benchmark separates a generated song; give no input files (choose the model with --model)")
    engine = engine_settings(segment, overlap, shifts, wiener_iterations, device)
    with user_errors():
        check_number("--jobs", jobs, 1, 1024)
        check_runtime(runtime, device)
    from stemsplit.pipelines import benchmark_speed

    seconds = benchmark_speed.BENCHMARK_SECONDS
    with user_errors():
        with console.status(f"separating a generated {seconds:.0f}-s song...") if is_tty() else nullcontext():
            result = benchmark_speed.measure_speed(model, engine, runtime, jobs, seconds)
    console.print(f"{result.model} ({result.runtime}) on this machine: {result.x_realtime:.1f}x real time "
                  f"({result.audio_seconds:.0f} s of stereo audio read, separated and written as stems in "
                  f"{result.separate_seconds:.2f} s, {result.cpu_seconds:.2f} s of CPU; loading the model took "
                  f"{result.load_seconds:.2f} s, not counted)", highlight=False, soft_wrap=True)
    if result.listed_x_realtime:
        console.print(f"--list-models gives {result.listed_x_realtime:.0f}x for it, measured on the build machine",
                      highlight=False, soft_wrap=True)
