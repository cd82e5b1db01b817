"""The shipped models' registry (stemsplit/pretrained/registry.json) and evaluate's summary table,
read and written for the release tools (package_models.py, package_report.py)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from stemsplit.atomic import write_text_atomic

PRETRAINED = Path(__file__).resolve().parent.parent / "stemsplit" / "pretrained"
REGISTRY = PRETRAINED / "registry.json"
STEMS = ("vocals", "drums", "bass", "other")


def load_registry() -> dict:
    return json.loads(REGISTRY.read_text()) if REGISTRY.is_file() else {"default": None, "models": {}}


def save_registry(reg: dict) -> None:
    write_text_atomic(REGISTRY, json.dumps(reg, indent=1, ensure_ascii=False) + "\n")


def read_summary(eval_dir: Path) -> dict:
    """(method, stem, metric) -> value from evaluate's summary.csv."""
    with open(eval_dir / "summary.csv", newline="") as f:
        return {(r["model"], r["stem"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
