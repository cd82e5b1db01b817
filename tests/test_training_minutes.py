"""Checkpoints record the wall minutes spent training, summed over resumed runs."""
from __future__ import annotations

from conftest import CONFIGS, TINY
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import read_checkpoint
from stemsplit.pipelines.train import TrainOptions, run_train


def test_train_minutes_are_recorded_and_add_up_over_a_resume(tmp_path):
    corpus = make_corpus(tmp_path / "ds", n_train=2, n_valid=1)
    run = tmp_path / "run"
    run_train(TrainOptions(config=CONFIGS / "lstm.yaml", data=corpus, out=run, device="cpu",
                           overrides=TINY["lstm"] + FAST + ["train.max_steps=2"]))
    first = read_checkpoint(run / "last.ckpt")
    minutes = first["meta"]["train_minutes"]
    assert minutes > 0 and abs(first["train_state"]["progress"]["train_seconds"] - 60 * minutes) < 1.0
    assert read_checkpoint(run / "best.ckpt")["meta"]["train_minutes"] > 0
    run_train(TrainOptions(resume=run, device="cpu", overrides=["train.max_steps=4"]))
    again = read_checkpoint(run / "last.ckpt")
    assert again["meta"]["train_minutes"] > minutes  # the resumed run adds its own time
