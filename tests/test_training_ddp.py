"""DDP through the real entry point: ``torchrun --nproc_per_node=2 -m stemsplit train`` on CPU (gloo).

Two processes with batch B must follow the loss curve of one process with batch 2B: the
sampler deals each single-process batch out across the ranks and DDP averages the
gradients. mask_cnn has no BatchNorm, and dropout is off, so the two runs compute the same
function of the same data; only the order of float additions differs.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from conftest import CONFIGS, TINY
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import load_checkpoint, read_checkpoint
from stemsplit.pipelines.train import TrainOptions, run_train

SETTINGS = TINY["mask_cnn"] + FAST + ["model.dropout=0.0", "data.excerpt_seconds=0.25"]


def _rows(run_dir, phase):
    with (run_dir / "metrics.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["phase"] == phase]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_doubled_batch(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    config = CONFIGS / "mask_cnn.yaml"
    single = tmp_path / "single"
    run_train(TrainOptions(config=config, data=corpus, out=single, device="cpu",
                           overrides=SETTINGS + ["train.batch_size=4"]))

    ddp = tmp_path / "ddp"
    sets = [a for s in SETTINGS + ["train.batch_size=2"] for a in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "stemsplit", "train", "--config", str(config), "--data", str(corpus), "--out", str(ddp),
           "--device", "cpu", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one, two = _rows(single, "train"), _rows(ddp, "train")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [str(s) for s in range(1, 9)]
    for a, b in zip(one, two):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-4, abs=1e-6), (a, b)
        for stem in ("vocals", "drums", "bass", "other"):
            assert float(b[f"acc_{stem}"]) == pytest.approx(float(a[f"acc_{stem}"]), abs=1e-4)
    for a, b in zip(_rows(single, "val"), _rows(ddp, "val")):
        assert float(b["sdr_mean"]) == pytest.approx(float(a["sdr_mean"]), abs=1e-3)
    # rank 0 alone writes: one line per step, a loadable best model, the run saved on 2 ranks
    assert len(_rows(ddp, "val")) == 2
    assert load_checkpoint(ddp / "best.ckpt").meta["world_size"] == 2
    assert len(read_checkpoint(ddp / "last.ckpt")["train_state"]["rng"]) == 2
    assert proc.stderr.count("validation at step 4:") == 1  # rank 1 prints nothing
