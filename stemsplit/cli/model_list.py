"""`stemsplit separate --list-models`: the shipped models, then the public ones, from the resolver.

A table per group on a terminal; tab-separated lines (one header per group) for scripts.
Speeds are as measured when the models were packaged, on the build machine: `stemsplit separate
--benchmark` measures this machine's.
"""
from __future__ import annotations

import typer
from rich.table import Table

from stemsplit.cli.common import console, is_tty
from stemsplit.resolver import list_models

SHIPPED_HEADER = ["name", "architecture", "size", "stems", "valid SDR (dB) per stem", "out of domain d/b/o gSDR (dB)",
                  "speed (x real time, build machine)", "streaming", "trained on"]
PUBLIC_HEADER = ["name", "model", "licence", "download", "cached", "stems", "score (dB, published)", "source"]


def _shipped_rows(models: list[dict]) -> list[list[str]]:
    rows = []
    for m in models:
        scores = m.get("valid_sdr") or {}
        rows.append([m["name"] + (" (default)" if m["default"] else ""), m.get("architecture", "?"),
                     f"{m['size_mb']} MB", ",".join(m.get("stems", [])),
                     " ".join(f"{k} {v:.2f}" for k, v in scores.items()) or "-",
                     f"{m['ood_gsdr_dbo']:.2f}" if m.get("ood_gsdr_dbo") is not None else "-",
                     f"{m['speed_x_realtime']:.0f}x" if m.get("speed_x_realtime") else "-",
                     f"yes, {m['latency_ms']:.1f} ms latency" if m.get("streaming") else "-",
                     m.get("trained_on", "-")])
    return rows


def _public_rows(models: list[dict]) -> list[list[str]]:
    rows = []
    for m in models:
        per_stem = m.get("published_per_stem_db") or {}
        mean = m.get("published_mean_db")
        score = " ".join(f"{k} {v:.2f}" for k, v in per_stem.items())
        score = (f"mean {mean:.2f}" + (f" ({score})" if score else "")) if mean is not None else "none published"
        rows.append([m["name"], m["title"], m["licence"], f"{m['download_mb']:.0f} MB",
                     "yes" if m["cached"] else "no", ",".join(m["stems"]), score, m.get("score_source") or "-"])
    return rows


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for col in header:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_models() -> None:
    models = list_models()
    shipped, public = _shipped_rows(models["shipped"]), _public_rows(models["public"])
    if not is_tty():  # tab-separated for scripts: a header line per group
        for header, rows in ((SHIPPED_HEADER, shipped), (PUBLIC_HEADER, public)):
            for row in [header] + rows:
                typer.echo("\t".join(row))
        return
    if shipped:
        _table("shipped models (offline, in the package)", SHIPPED_HEADER, shipped)
    else:
        console.print("No trained models ship with this build; pass --model path/to/model.ckpt.")
    for text in sorted({m["licence"] for m in models["shipped"] if m.get("licence")}):
        console.print(f"training data licence: {text}", soft_wrap=True, markup=False)
    if public:
        _table("public pretrained models (downloaded and verified on first use: --model NAME)", PUBLIC_HEADER, public)
        console.print("scores marked published are the authors' own figures, not measured by stemsplit; "
                      "fetch ahead of time with: stemsplit models pull NAME", soft_wrap=True, markup=False)
    console.print(architectures_line(), soft_wrap=True, markup=False, highlight=False)


def architectures_line() -> str:
    """The families `stemsplit train` can build, from the model registry."""
    from stemsplit.models import model_class, names

    kinds = [f"{n} ({model_class(n).input_kind} -> {model_class(n).output_kind})" for n in names()]
    return "architectures to train (stemsplit train --config configs/<name>.yaml): " + ", ".join(kinds)
