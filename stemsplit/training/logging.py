"""What a run shows and records: progress display, metrics.csv, TensorBoard, plots.

Only rank 0 creates these. ``metrics.csv`` has one row per logging interval (``phase=train``,
averages over the interval) and one per validation (``phase=val``); columns that do not apply
to a row are empty. Plots are redrawn after each validation.
"""
from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from stemsplit.atomic import write_bytes_atomic
from stemsplit.config import ConfigError
from stemsplit.errors import install_extra

BASE_COLUMNS = ["step", "epoch", "phase", "loss", "lr", "excerpts_per_s", "s_per_step",
                "data_wait", "grad_norm", "wall_time"]


def metric_columns(stems: list[str], with_accuracy: bool) -> list[str]:
    cols = list(BASE_COLUMNS)
    if with_accuracy:
        cols += [f"acc_{s}" for s in stems]
    return cols + [f"sdr_{s}" for s in stems] + ["sdr_mean"]



class MetricsLog:
    """Appends rows to ``metrics.csv``; on resume drops the rows logged after the checkpoint."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None):
        self.path = Path(path)
        self.columns = columns
        self.rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if _int(r.get("step")) <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        write_bytes_atomic(self.path, buf.getvalue().encode())

    def append(self, row: dict[str, Any]) -> None:
        clean = {k: _fmt(v) for k, v in row.items() if k in self.columns}
        self.rows.append(clean)
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore").writerow(clean)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _floats(rows: list[dict], key: str, phase: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        if r.get("phase") == phase and r.get(key) not in (None, ""):
            value = float(r[key])
            if math.isfinite(value):
                xs.append(_int(r["step"]))
                ys.append(value)
    return xs, ys


def write_plots(rows: list[dict], run_dir: Path, stems: list[str], with_accuracy: bool) -> None:
    """``loss.png`` and ``val_sdr.png`` (and ``mask_accuracy.png`` for mask models) from the rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def save(fig: Figure, name: str) -> None:
        buf = io.BytesIO()
        FigureCanvasAgg(fig).print_png(buf)
        write_bytes_atomic(run_dir / name, buf.getvalue())

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.plot(*_floats(rows, "loss", "train"), label="train", lw=1)
    ax.plot(*_floats(rows, "loss", "val"), "o-", label="validation")
    ax.set(xlabel="step", ylabel="loss", title="loss")
    ax.legend()
    save(fig, "loss.png")

    panels = [("sdr", "val_sdr.png", "validation SDR (dB)")]
    if with_accuracy:
        panels.append(("acc", "mask_accuracy.png", "validation mask accuracy"))
    for prefix, name, title in panels:
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        for stem in stems:
            ax.plot(*_floats(rows, f"{prefix}_{stem}", "val"), "o-", label=stem, ms=3)
        if prefix == "sdr":
            ax.plot(*_floats(rows, "sdr_mean", "val"), "k--", label="mean", lw=2)
        ax.set(xlabel="step", title=title)
        ax.legend()
        save(fig, name)


class TensorBoardLog:
    """Optional ``train.tensorboard``: scalars into ``run_dir/tensorboard``."""

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.tensorboard: the 'tensorboard' package is not installed; "
                              f"{install_extra('tensorboard')}, or set train.tensorboard=false") from None
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def add(self, row: dict[str, Any]) -> None:
        phase, step = row.get("phase", "train"), int(row["step"])
        for key, value in row.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                self.writer.add_scalar(f"{phase}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class ProgressReporter:
    """Rich progress bar (steps, loss, it/s, ETA) on a terminal; a plain line per interval otherwise."""

    def __init__(self, total_steps: int, start_step: int, *, tty: bool, console: Console | None = None,
                 enabled: bool = True, log_every: int = 10):
        self.enabled, self.tty, self.log_every = enabled, tty, max(1, log_every)
        self.console = console or Console(file=sys.stderr, highlight=False)
        self.total, self.start = total_steps, start_step
        self._t0 = time.perf_counter()
        self._progress: Progress | None = None
        if enabled and tty:
            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("epoch {task.fields[epoch]}  loss {task.fields[loss]}  {task.fields[rate]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step,
                                                 epoch=0, loss="-", rate="")
            self._progress.start()

    def rate(self, step: int) -> float:
        done = step - self.start
        return done / max(1e-9, time.perf_counter() - self._t0)

    def step(self, step: int, epoch: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        rate = self.rate(step)
        if self._progress is not None:
            self._progress.update(self._task, completed=step, epoch=epoch, loss=f"{loss:.4g}",
                                  rate=f"{rate:.2f} it/s")
        elif step % self.log_every == 0 or step == self.total:
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            self.message(f"step {step}/{self.total}  epoch {epoch}  loss {loss:.4g}  lr {lr:.3g}  "
                         f"{rate:.2f} it/s  eta {_duration(eta)}")

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Interval:
    """Sums over the steps since the last metrics row."""

    def __init__(self, stems: int):
        self.stems = stems
        self.reset()

    def reset(self) -> None:
        self.steps, self.loss_sum, self.grad_norm, self.data_time, self.step_time = 0, 0.0, 0.0, 0.0, 0.0
        self.acc_sum = torch.zeros(self.stems, dtype=torch.float64)

    def add(self, totals: torch.Tensor, grad_norm: float, data_time: float, step_time: float) -> None:
        self.steps += 1
        self.loss_sum += float(totals[0])
        self.acc_sum += totals[3:]
        self.grad_norm += grad_norm if math.isfinite(grad_norm) else 0.0
        self.data_time += data_time
        self.step_time += step_time

    def fields(self, batch_size: int, accuracy_stems: list[str]) -> dict[str, float]:
        """The interval's averages as ``metrics.csv`` train-row fields; ``acc_<stem>`` for the stems given."""
        n = max(1, self.steps)
        row = {"loss": self.loss_sum / n, "excerpts_per_s": self.steps * batch_size / max(self.step_time, 1e-9),
               "s_per_step": self.step_time / n, "data_wait": self.data_time / max(self.step_time, 1e-9),
               "grad_norm": self.grad_norm / n}
        row.update({f"acc_{s}": v for s, v in zip(accuracy_stems, (self.acc_sum / n).tolist())})
        return row
