"""`stemsplit stream`: flags -> StreamRequest -> pipelines.stream; a summary, and live misses as they come.

Ctrl-C and SIGTERM end the stream at the next block: the files are finished (aligned, valid,
holding what was streamed), then the command exits 130 or 143.
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from stemsplit.cli.common import PANEL, app, console, fail, user_errors
from stemsplit.cli.flags import check_choice, check_number
from stemsplit.settings import check_runtime

LIVE = "Live audio (pip extra: stream)"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@contextmanager
def stop_on_signals(stop) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the stream ends cleanly) instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop.request) for sig in EXIT_CODES}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _MissReporter:
    """One line when live blocks were played as the mix, at most once a second."""

    def __init__(self) -> None:
        self.shown, self.last = 0, 0.0

    def __call__(self, loop) -> None:
        now = time.monotonic()
        if loop.misses > self.shown and now - self.last >= 1.0:
            console.print(f"deadline missed: {loop.misses} of {loop.blocks} blocks went out as the mix "
                          f"({loop.dropped} not separated)", highlight=False, soft_wrap=True)
            self.shown, self.last = loop.misses, now


def _summary(stats: dict, out: Path | None) -> None:
    p50, p99 = stats["compute_ms_p50"], stats["compute_ms_p99"]
    timing = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms" if p50 is not None else "no blocks"
    console.print(f"streamed {stats['audio_seconds']:.1f} s with {stats['model']} ({stats['runtime']}): latency "
                  f"{stats['latency_ms']:.1f} ms ({stats['latency_samples']} samples); compute per "
                  f"{stats['block']}-sample block ({stats['block_ms']:.1f} ms) {timing}; deadline misses "
                  f"{stats['deadline_misses']} of {stats['blocks']}", highlight=False, soft_wrap=True, markup=False)
    if out is not None and stats["outputs"]:
        console.print(f"wrote {', '.join(Path(p).name for p in stats['outputs'].values())} to {out}",
                      highlight=False, soft_wrap=True, markup=False)


@app.command()
def stream(
    source: str | None = typer.Argument(None, metavar="[INPUT]", help="An audio file, or - for raw PCM on standard "
                                        "input (with --raw-format, --rate, --channels); none with --input-device."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for <stem>.wav, aligned with the input."),
    model: str | None = typer.Option(None, "--model", "-m", help="A streaming (causal) model: shipped name, .ckpt "
                                     "or .onnx (default: the shipped streaming model)."),
    block: int = typer.Option(512, "--block", help="Samples per block: any size; the latency does not depend on it."),
    bits: int = typer.Option(16, "--bits", help="16 or 24 (int), or 32 (float)."),
    stats_json: Path | None = typer.Option(None, "--stats-json", help="Write latency, compute-time percentiles, "
                                           "deadline misses and CPU use to this JSON file."),
    raw_format: str | None = typer.Option(None, "--raw-format", help="INPUT '-': f32le or s16le (interleaved)."),
    rate: int | None = typer.Option(None, "--rate", help="INPUT '-': sample rate in Hz."),
    channels: int | None = typer.Option(None, "--channels", help="INPUT '-': channel count."),
    runtime: str = typer.Option("auto", "--runtime", help="onnx, torch, or auto (onnx where the model has an ONNX "
                                "form).", rich_help_panel=PANEL),
    jobs: int = typer.Option(1, "--jobs", help="CPU threads for the network (one stream: 1 is fastest per frame).",
                             rich_help_panel=PANEL),
    input_device: str | None = typer.Option(None, "--input-device", help="Separate a sound card's input (a number "
                                            "or part of a name from --list-devices).", rich_help_panel=LIVE),
    output_device: str | None = typer.Option(None, "--output-device", help="Where --play goes (default: the "
                                             "system's output).", rich_help_panel=LIVE),
    play: str | None = typer.Option(None, "--play", help="Play one stem live, or no_<stem> for all but it "
                                    "(no_vocals: karaoke).", rich_help_panel=LIVE),
    list_devices: bool = typer.Option(False, "--list-devices", help="List the sound devices and exit.",
                                      rich_help_panel=LIVE),
) -> None:
    """Separate in real time, block by block: `stemsplit stream song.wav -o stems/`."""
    from stemsplit.separation.stream_sources import StopFlag

    if list_devices:
        with user_errors():
            from stemsplit.separation.live_sounddevice import list_devices as devices

            typer.echo(devices())
        return
    live = input_device is not None or output_device is not None or play is not None
    if live and source is not None and input_device is not None:
        fail("give INPUT or --input-device, not both")
    if source is None and input_device is None:
        fail("no input given; usage: stemsplit stream SONG -o DIR, stemsplit stream - --raw-format f32le --rate 44100 "
             "--channels 2 -o DIR, or stemsplit stream --input-device N --play no_vocals")
    with user_errors():
        check_number("--jobs", jobs, 1, 1024)
        check_choice("--bits", str(bits), ("16", "24", "32"))
        check_runtime(runtime, "cpu")
    from stemsplit.pipelines.stream import StreamRequest, stream_live, stream_to_files

    req = StreamRequest(input=source, out_dir=out, model=model, block=block, bits=bits, runtime=runtime,
                        threads=jobs, raw_format=raw_format, rate=rate, channels=channels, play=play,
                        stats_json=stats_json)
    stop = StopFlag()
    with user_errors(), stop_on_signals(stop):
        if live:
            from stemsplit.separation.live_sounddevice import SoundDeviceBackend

            backend = SoundDeviceBackend(input_device, output_device)
            stats = stream_live(req, backend, stop, on_status=_MissReporter())
        else:
            import sys

            stats = stream_to_files(req, stop, stdin=sys.stdin.buffer)
    summary = stats.as_dict()
    _summary(summary, out)
    if stop.signum is not None:
        name = signal.Signals(stop.signum).name
        console.print(f"stopped by {name}: the stems of the {summary['audio_seconds']:.1f} s streamed so far were "
                      "finished" + (f" in {out}" if out else ""), highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_CODES.get(stop.signum, 1))
