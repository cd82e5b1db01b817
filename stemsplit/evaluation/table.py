"""The terminal view of a report: one rich table of models by stems per metric."""
from __future__ import annotations

import math

from rich.table import Table

from stemsplit.evaluation.reports import EvaluationReport
from stemsplit.metrics import MEAN_STEM

TITLES = {"gsdr": "global SDR (gsdr, MDX), dB", "SDR": "SDR (BSS Eval v4), dB", "SIR": "SIR, dB",
          "ISR": "ISR, dB", "SAR": "SAR, dB"}


def _cell(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def metric_table(report: EvaluationReport, metric: str) -> Table:
    """Rows: models; columns: stems and their mean; cells: the median over tracks."""
    table = Table(title=f"{TITLES.get(metric, metric)}, median over {report.tracks_label()}",
                  title_justify="left")
    table.add_column("model", style="bold")
    for stem in report.stems:
        table.add_column(stem, justify="right")
    table.add_column(MEAN_STEM, justify="right", style="bold")
    table.add_column("tracks", justify="right", style="dim")
    for model in report.scored_models():
        cells = [_cell(report.value(model, s, metric)) for s in [*report.stems, MEAN_STEM]]
        table.add_row(model, *cells, str(len(report.results[model])))
    missing = report.not_scored()
    if missing:  # which tracks the medians leave out, and for which rows
        table.caption = "not scored: " + "; ".join(f"{t} ({', '.join(m)})" for t, m in missing.items())
        table.caption_justify = "left"
    return table


def report_tables(report: EvaluationReport, metrics: list[str] | None = None) -> list[Table]:
    """The tables to print: SDR then gsdr by default (SIR/ISR/SAR are in summary.md)."""
    wanted = metrics or [m for m in ("SDR", "gsdr") if m in report.metrics]
    return [metric_table(report, m) for m in wanted]
