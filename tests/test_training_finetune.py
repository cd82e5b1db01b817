"""Fine-tuning: train.init_from starts a new run from another run's weights."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import CONFIGS, TINY
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import read_checkpoint
from stemsplit.config import ConfigError
from stemsplit.pipelines.train import TrainOptions, run_train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "ds", n_train=2, n_valid=1)


def _run(corpus, out, arch="lstm", extra=()):
    return run_train(TrainOptions(config=CONFIGS / f"{arch}.yaml", data=corpus, out=out, device="cpu",
                                  overrides=TINY[arch] + FAST + ["train.max_steps=2", *extra]))


def test_init_from_starts_where_the_other_run_ended(corpus, tmp_path):
    _run(corpus, tmp_path / "pre")
    pretrained = read_checkpoint(tmp_path / "pre" / "last.ckpt")["state_dict"]
    # a rate of 1e-12 leaves the weights where they started, to float precision
    _run(corpus, tmp_path / "tuned", extra=[f"train.init_from={tmp_path / 'pre' / 'last.ckpt'}",
                                            "train.lr=1e-12", "train.max_steps=1"])
    tuned = read_checkpoint(tmp_path / "tuned" / "last.ckpt")["state_dict"]
    fresh = read_checkpoint(tmp_path / "pre" / "last.ckpt")  # unchanged by the second run
    for key, value in pretrained.items():
        if "running_" in key or "num_batches" in key:  # batch-norm statistics move with any batch
            continue
        assert torch.allclose(tuned[key].float(), value.float(), atol=1e-6), key
        assert torch.equal(fresh["state_dict"][key], value)


def test_init_from_another_architecture_is_a_config_error(corpus, tmp_path):
    _run(corpus, tmp_path / "pre")
    with pytest.raises(ConfigError, match="train.init_from: .* holds a 'lstm' model, the config builds 'unet'"):
        _run(corpus, tmp_path / "tuned", arch="unet",
             extra=[f"train.init_from={tmp_path / 'pre' / 'last.ckpt'}"])
    with pytest.raises(ConfigError, match="do not fit this config's model"):
        _run(corpus, tmp_path / "bigger", extra=[f"train.init_from={tmp_path / 'pre' / 'last.ckpt'}",
                                                 "model.hidden_size=32"])


def test_a_fine_tune_records_every_dataset_its_weights_saw(tmp_path):
    licensed = make_corpus(tmp_path / "musdb_like", n_train=2, n_valid=1, seed=3)
    extra = make_corpus(tmp_path / "extra", n_train=2, n_valid=0, seed=4)
    for folder, terms in ((licensed, "terms A"), (extra, "terms B")):  # as prepare --licence writes them
        data = json.loads((folder / "dataset.json").read_text())
        data.update(licence=terms, source=f"folder:{folder}")
        (folder / "dataset.json").write_text(json.dumps(data))
    run_train(TrainOptions(config=CONFIGS / "lstm.yaml", data=licensed, out=tmp_path / "pre", device="cpu",
                           overrides=TINY["lstm"] + FAST + ["train.max_steps=2"]))
    run_train(TrainOptions(config=CONFIGS / "lstm.yaml", data=licensed, out=tmp_path / "tuned", device="cpu",
                           overrides=TINY["lstm"] + FAST + ["train.max_steps=1",
                                                            f"train.init_from={tmp_path / 'pre' / 'best.ckpt'}",
                                                            f"data.extra=[{extra}]"]))
    pre = read_checkpoint(tmp_path / "pre" / "best.ckpt")["meta"]
    tuned = read_checkpoint(tmp_path / "tuned" / "last.ckpt")["meta"]
    assert [d["licence"] for d in pre["datasets"]] == ["terms A"]
    # the pretraining set once (it is also this run's --data), then the extra one
    assert [(d["licence"], d["train_tracks"]) for d in tuned["datasets"]] == [("terms A", 2), ("terms B", 2)]
    assert tuned["init_from"]["best_step"] == pre["best_step"] and tuned["init_from"]["train_minutes"] >= 0


def test_a_final_fit_on_train_and_valid_says_so_in_its_metadata(tmp_path):
    """data.train_on_valid: the first dataset's valid tracks count as trained on, recorded also
    in a fine-tune of it that does not set the option itself."""
    data = make_corpus(tmp_path / "ds", n_train=2, n_valid=1, seed=5)
    run_train(TrainOptions(config=CONFIGS / "lstm.yaml", data=data, out=tmp_path / "fit", device="cpu",
                           overrides=TINY["lstm"] + FAST + ["train.max_steps=2", "data.train_on_valid=true"]))
    fit = read_checkpoint(tmp_path / "fit" / "last.ckpt")["meta"]["datasets"]
    assert [(d["train_tracks"], d.get("valid_trained_on")) for d in fit] == [(3, True)]
    run_train(TrainOptions(config=CONFIGS / "lstm.yaml", data=data, out=tmp_path / "tuned", device="cpu",
                           overrides=TINY["lstm"] + FAST + ["train.max_steps=1",
                                                            f"train.init_from={tmp_path / 'fit' / 'last.ckpt'}"]))
    tuned = read_checkpoint(tmp_path / "tuned" / "last.ckpt")["meta"]["datasets"]
    assert [(d["train_tracks"], d.get("valid_trained_on")) for d in tuned] == [(3, True)]
