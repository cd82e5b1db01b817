"""Fitting (models with ``trained_by = "fit"``) through ``stemsplit train``: the same run folder,
validation, resume and signals as gradient training, with no optimizer."""
from __future__ import annotations

import csv
import os
import signal

import pytest
import torch
from conftest import CONFIGS, TINY
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import load_checkpoint, read_checkpoint
from stemsplit.config import ConfigError
from stemsplit.data.cache import PreparedDataset
from stemsplit.pipelines.train import TrainOptions, run_train
from stemsplit.training.distributed import DistContext
from stemsplit.training.fit import Fitter


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("fit") / "ds", n_train=3, n_valid=1, seconds=1.0)


def _options(corpus, out, extra=()):
    return TrainOptions(config=CONFIGS / "nmf.yaml", data=corpus, out=out, device="cpu",
                        overrides=TINY["nmf"] + FAST + ["train.val_excerpts=2", *extra])


def test_a_fit_run_writes_the_run_folder_of_any_run(corpus, tmp_path):
    run = tmp_path / "run"
    result = run_train(_options(corpus, run))
    assert result.stopped_by == "epochs" and result.step == 8 and result.best_step >= 0
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "config.yaml", "run.json", "val_sdr.png"):
        assert (run / name).is_file(), name
    best = load_checkpoint(run / "best.ckpt")
    assert best.meta["trained_by"] == "fit" and set(best.meta["scores"]["sdr"]) == set(best.stems)
    assert best.model.fitted_batches.item() == best.meta["steps"]  # the fit state is in the weights
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["phase"] == "train"] == list(range(1, 9))
    assert len([r for r in rows if r["phase"] == "val"]) == 2  # once per epoch, as for any run
    assert read_checkpoint(run / "last.ckpt")["train_state"]["progress"]["finished"] is True
    again = run_train(TrainOptions(resume=run, device="cpu"))
    assert again.stopped_by == "already_finished" and again.step == 8


def test_interrupted_and_resumed_equals_uninterrupted(corpus, tmp_path):
    full = run_train(_options(corpus, tmp_path / "full"))

    def interrupt(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    cut = run_train(_options(corpus, tmp_path / "cut"), on_step=interrupt)
    assert cut.stopped_by == "SIGINT" and cut.step == 3
    assert read_checkpoint(tmp_path / "cut" / "last.ckpt")["train_state"]["progress"]["finished"] is False
    resumed = run_train(TrainOptions(resume=tmp_path / "cut", device="cpu"))
    assert resumed.step == full.step == 8
    a = read_checkpoint(tmp_path / "full" / "last.ckpt")["state_dict"]
    b = read_checkpoint(tmp_path / "cut" / "last.ckpt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed fit differs from the uninterrupted one"


def test_max_steps_can_be_raised_to_fit_on(corpus, tmp_path):
    run = tmp_path / "run"
    assert run_train(_options(corpus, run, ["train.max_steps=2"])).step == 2
    first = read_checkpoint(run / "last.ckpt")["state_dict"]["dictionaries"]
    more = run_train(TrainOptions(resume=run, device="cpu", overrides=["train.max_steps=4"]))
    assert more.step == 4 and more.stopped_by == "max_steps"
    assert not torch.equal(first, read_checkpoint(run / "last.ckpt")["state_dict"]["dictionaries"])


def test_fitting_refuses_to_run_under_torchrun(corpus, tmp_path):
    from stemsplit.config import load_config

    cfg = load_config(CONFIGS / "nmf.yaml", TINY["nmf"] + FAST)
    with pytest.raises(ConfigError, match="fitted without gradients and runs in one process"):
        Fitter(cfg, tmp_path, [PreparedDataset(corpus)], DistContext(rank=0, world_size=2))
