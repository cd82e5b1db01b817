"""scripts/recipes_book.py: the recipe lines train_default_models.sh runs, and the training
data and licence that packaging writes into a shipped model's metadata."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import recipes_book  # noqa: E402

BOOK = {"models": {
    "base": {"ship": False, "config": "configs/band_split.yaml", "set": ["train.max_steps=10"]},
    "tuned": {"init_from": "base", "extra_data": ["multitracks"], "config": "configs/band_split.yaml",
              "set": ["train.max_steps=2", "data.weights=[0.5,0.5]"]},
}}


def test_a_two_stage_recipe_becomes_a_stage_line_then_a_fine_tune_line():
    lines = recipes_book.train_lines(BOOK, "runs/x", {"multitracks": "data/mt"})
    assert lines == [
        "base stage configs/band_split.yaml --set train.max_steps=10",
        "tuned ship configs/band_split.yaml --set train.max_steps=2 --set data.weights=[0.5,0.5] "
        "--set train.init_from=runs/x/base/best.ckpt --set data.extra=[data/mt]"]


def test_recipe_mistakes_are_named():
    with pytest.raises(SystemExit, match="pass --extra multitracks=DIR"):
        recipes_book.train_lines(BOOK, "runs", {})
    backwards = {"models": {"tuned": BOOK["models"]["tuned"], "base": BOOK["models"]["base"]}}
    with pytest.raises(SystemExit, match="starts from 'base', which is not a recipe above it"):
        recipes_book.train_lines(backwards, "runs", {"multitracks": "d"})
    with pytest.raises(SystemExit, match="unknown key 'seeds'"):
        recipes_book.train_lines({"models": {"a": {"config": "c", "seeds": 2}}}, "runs", {})


def test_the_shipped_book_reads_and_every_fine_tune_names_a_stage_above_it():
    book = recipes_book.load_book()
    lines = recipes_book.train_lines(book, "runs", {"multitracks": "data/multitracks"})
    assert len(lines) == len(book["models"])
    assert all(line.split()[1] in ("ship", "stage") for line in lines)
    assert recipes_book.ensemble_lines(book)


def test_training_data_and_licence_come_from_every_dataset_the_weights_saw():
    meta = {"datasets": [
        {"source": "musdb18:/x/musdb18-7", "licence": "MUSDB18: academic", "train_tracks": 80},
        {"source": "folder:/y/multitracks", "licence": "CC0 and CC BY-NC-SA", "train_tracks": 11}]}
    data, licence = recipes_book.training_data_and_licence(meta, "default data", "default licence")
    assert data == ("MUSDB18 (musdb18-7): the 80 tracks of musdb's train split, its valid split held out for "
                    "validation; multitracks (folder): 11 training tracks")
    assert licence == "MUSDB18: academic; CC0 and CC BY-NC-SA"
    # checkpoints from before the datasets record: trained on MUSDB18 alone
    assert recipes_book.training_data_and_licence({}, "d", "l") == ("d", "l")
    meta["datasets"][1]["licence"] = ""
    with pytest.raises(SystemExit, match="multitracks: its dataset.json records no licence.*--licence"):
        recipes_book.training_data_and_licence(meta, "d", "l")
