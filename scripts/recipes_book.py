"""The shipped models' recipes (stemsplit/pretrained/recipes.yaml) and what their data was.

A recipe is a config plus `stemsplit train --set` flags, and optionally:
  ship: false            a stage that is trained but not packaged (the base of a fine-tune)
  init_from: NAME        start from recipe NAME's best checkpoint (RUNS/NAME/best.ckpt)
  extra_data: [KEY ...]  train on these prepared datasets too (data.extra), each KEY given a
                         folder on the command line (--extra multitracks=data/multitracks)
Recipes run in file order, so a stage comes before the recipes that start from it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

RECIPES = Path(__file__).resolve().parent.parent / "stemsplit" / "pretrained" / "recipes.yaml"
MUSDB_DESCRIPTION = ("MUSDB18 train subset as 7-second excerpts (musdb18-7): the 80 tracks of "
                     "musdb's train split, its 14-track valid split held out for validation")
KNOWN_KEYS = {"config", "set", "ship", "init_from", "extra_data"}


def load_book(path: Path = RECIPES) -> dict:
    return yaml.safe_load(Path(path).read_text())


def train_lines(book: dict, runs: str, extra: dict[str, str]) -> list[str]:
    """"name ship|stage config --set k=v ..." per trained recipe, in order."""
    lines, seen = [], set()
    for name, recipe in book["models"].items():
        unknown = set(recipe) - KNOWN_KEYS
        if unknown:
            raise SystemExit(f"recipes.yaml: {name}: unknown key {sorted(unknown)[0]!r}; known: {sorted(KNOWN_KEYS)}")
        sets = list(recipe.get("set", []))
        base = recipe.get("init_from")
        if base:
            if base not in seen:
                raise SystemExit(f"recipes.yaml: {name} starts from {base!r}, which is not a recipe above it")
            sets.append(f"train.init_from={runs}/{base}/best.ckpt")
        keys = recipe.get("extra_data") or []
        if keys:
            missing = [k for k in keys if k not in extra]
            if missing:
                raise SystemExit(f"recipes.yaml: {name} trains on {missing[0]!r} too; pass --extra {missing[0]}=DIR")
            sets.append("data.extra=[" + ",".join(extra[k] for k in keys) + "]")
        ship = "ship" if recipe.get("ship", True) else "stage"
        lines.append(" ".join([name, ship, recipe["config"], *(f"--set {s}" for s in sets)]))
        seen.add(name)
    return lines


def ensemble_lines(book: dict) -> list[str]:
    """"name step wiener sets member ..." per ensemble (sets ';'-separated, '-' for none)."""
    lines = []
    for name, recipe in (book.get("ensembles") or {}).items():
        sets = ";".join(recipe.get("set", []))  # ';': a value may hold commas (a list)
        lines.append(" ".join(str(x) for x in (name, recipe.get("step", 0.05), recipe.get("wiener_iterations", 0),
                                               sets or "-", *recipe["members"])))
    return lines


def _describe(dataset: dict) -> str:
    kind, _, where = str(dataset.get("source", "")).partition(":")
    tracks = dataset.get("train_tracks", "?")
    if kind.startswith("musdb18"):  # musdb18-7, the full MUSDB18 or MUSDB18-HQ: the folder says which
        return (f"MUSDB18 ({Path(where).name}): the {tracks} tracks of musdb's train split, its valid split "
                "held out for validation")
    return f"{Path(where).name or kind} ({kind}): {tracks} training tracks"


def training_data_and_licence(meta: dict, default_data: str, default_licence: str) -> tuple[str, str]:
    """What the weights saw and under which terms, from the checkpoint's ``datasets`` record
    (every dataset of the run and of the run it was fine-tuned from); checkpoints written before
    that record existed were trained on MUSDB18 alone and get the defaults."""
    datasets = meta.get("datasets")
    if not datasets:
        return meta.get("training_data", default_data), meta.get("licence", default_licence)
    unlicensed = [d.get("source", "?") for d in datasets if not d.get("licence")]
    if unlicensed:
        raise SystemExit(f"{unlicensed[0]}: its dataset.json records no licence, so the model cannot say under "
                         "which terms it was trained; prepare it again with --licence TEXT and retrain")
    data = "; ".join(dict.fromkeys(_describe(d) for d in datasets))
    licence = "; ".join(dict.fromkeys(d["licence"] for d in datasets))
    return data, licence
