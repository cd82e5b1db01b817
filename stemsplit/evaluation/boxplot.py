"""``sdr_boxplot.png``: SiSEC-style boxes of per-track SDR, one panel per stem, one box per model.

As in the SiSEC 2018 figures, boxes are horizontal, methods are sorted by their median
(best on top, the same order in every panel), the box spans the quartiles, whiskers reach
1.5 IQR and outlying tracks are dots. BSS Eval SDR is plotted when it was computed, else
the global SDR.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from stemsplit.atomic import mkstemp_beside
from stemsplit.evaluation.reports import EvaluationReport
from stemsplit.metrics import GSDR, MEAN_STEM

ORACLE_COLOUR, MIXTURE_COLOUR, MODEL_COLOUR = "#9ecae1", "#d9d9d9", "#fdae6b"


def _colour(name: str) -> str:
    if name == "mixture":
        return MIXTURE_COLOUR
    return ORACLE_COLOUR if name.startswith("oracle-") else MODEL_COLOUR


def _horizontal(matplotlib) -> dict:
    """``vert=False`` became ``orientation`` in matplotlib 3.10 (the old name warns from 3.11)."""
    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def write_boxplot(report: EvaluationReport, path: Path) -> Path | None:
    """Render the figure atomically; None when there is no score to plot."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    metric = "SDR" if "SDR" in report.metrics else GSDR
    values: dict[str, dict[str, list[float]]] = {}
    for model, _track, stem, m, value in report.track_rows():
        if m == metric and math.isfinite(value):
            values.setdefault(model, {}).setdefault(stem, []).append(value)
    models = [m for m in report.scored_models() if m in values]
    if not models:
        return None
    # best median of the stem average on top, as SiSEC sorts its methods
    models.sort(key=lambda m: -np.nan_to_num(report.value(m, MEAN_STEM, metric), nan=-1e9))
    stems = report.stems
    fig, axes = plt.subplots(1, len(stems), figsize=(3.2 * len(stems) + 1.5, 0.45 * len(models) + 1.6),
                             sharey=True, squeeze=False)
    positions = np.arange(len(models))[::-1]  # first (best) model at the top
    for ax, stem in zip(axes[0], stems):
        data = [values[m].get(stem, []) or [np.nan] for m in models]
        box = ax.boxplot(data, positions=positions, widths=0.6, patch_artist=True, **_horizontal(matplotlib),
                         showfliers=True, flierprops={"marker": ".", "markersize": 3, "alpha": 0.6},
                         medianprops={"color": "black", "linewidth": 1.5})
        for patch, model in zip(box["boxes"], models):
            patch.set_facecolor(_colour(model))
        ax.set_title(stem)
        ax.set_xlabel(f"{metric} (dB)")
        ax.grid(axis="x", alpha=0.3)
        ax.axvline(0.0, color="grey", linewidth=0.6)
    axes[0][0].set_yticks(positions)
    axes[0][0].set_yticklabels(models)
    what = "BSS Eval v4 SDR, median over 1 s frames" if metric == "SDR" else "global SDR (MDX)"
    fig.suptitle(f"{what} per track, {report.tracks_label()}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = mkstemp_beside(path, suffix=".png")  # unique per run: two evaluations may share --out
    os.close(fd)
    tmp = Path(name)
    try:
        fig.savefig(tmp, dpi=120, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
