"""The README's markdown tables of the shipped models (scripts/package_models.py report)."""
from __future__ import annotations

from pathlib import Path

from registry_io import PRETRAINED, STEMS, load_registry, read_summary

ORACLE_ROWS = ("oracle-ibm", "oracle-irm-mag", "oracle-irm-power", "mixture")
SEED_ACCURACY = {"vocals": 74.3, "drums": 68.5, "bass": 93.9, "other": 73.2}  # the Lviv study's validation


def report(eval_dir: Path) -> None:
    """Markdown: the shipped models, then median SDR and gSDR per stem beside the oracle rows."""
    table, reg = read_summary(eval_dir), load_registry()
    print("| model | architecture | parameters | size | weights | speed (3-min song, 2-core CPU) | headroom closed "
          "| out of domain d/b/o | phantom vocals |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for name, e in reg["models"].items():
        size = (PRETRAINED / e["file"]).stat().st_size / 1e6
        label = f"`{name}`" + (" (default)" if name == reg.get("default") else "")
        print(f"| {label} | {e['architecture']} | {e['params'] / 1e6:.2f}M | {size:.1f} MB | {e['weights_dtype']} "
              f"| {e['speed_x_realtime']}x real time | {100 * e['headroom_closed']:.0f} % "
              f"| {e.get('ood_gsdr_dbo', float('nan')):.2f} dB "
              f"| {e.get('phantom_vocals_db', float('nan')):.1f} dB |".replace(" -", " \u2212"))
    for metric, title in (("SDR", "median SDR (BSS Eval v4), dB"), ("gsdr", "median gSDR, dB")):
        print(f"\n| {title} | " + " | ".join(STEMS) + " | mean |")
        print("|---|" + "---:|" * (len(STEMS) + 1))
        for row in [*reg["models"], *ORACLE_ROWS]:
            values = [table.get((row, stem, metric), float("nan")) for stem in (*STEMS, "mean")]
            print(f"| {row} | " + " | ".join(f"{v:.2f}".replace("-", "\u2212") for v in values) + " |")
    with_accuracy = [n for n, e in reg["models"].items() if "mask_accuracy" in e]
    if with_accuracy:
        print("\n| binary-mask accuracy on valid, % | " + " | ".join(STEMS) + " |")
        print("|---|" + "---:|" * len(STEMS))
        for name in with_accuracy:
            acc = reg["models"][name]["mask_accuracy"]
            print(f"| {name} | " + " | ".join(f"{acc[s]:.1f}" for s in STEMS) + " |")
        print("| seed study (its validation) | " + " | ".join(f"{SEED_ACCURACY[s]:.1f}" for s in STEMS) + " |")
