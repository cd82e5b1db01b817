"""The training loop end to end on a tiny generated corpus: learning, resume, signals, faults."""
from __future__ import annotations

import csv
import math
import os
import signal

import pytest
import torch
from conftest import CONFIGS, TINY, tiny_config
from test_training_corpus import FAST, make_corpus

from stemsplit.checkpoint import load_checkpoint, read_checkpoint
from stemsplit.config import ConfigError
from stemsplit.models import build_model
from stemsplit.pipelines.train import TrainOptions, run_train
from stemsplit.training import loop as loop_module
from stemsplit.training.loop import TrainingDiverged
from stemsplit.training.losses import LossOutput, SeparationLoss, TrainForward
from stemsplit.training.validate import ValResult


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "ds")


def _options(arch, corpus, out, extra=()):
    return TrainOptions(config=CONFIGS / f"{arch}.yaml", data=corpus, out=out,
                        overrides=TINY[arch] + FAST + list(extra), device="cpu")


def _weights(path):
    return read_checkpoint(path)["state_dict"]


def _train_rows(run_dir):
    with (run_dir / "metrics.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["phase"] == "train"]


# --- learning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["mask_cnn", "lstm", "unet"])
def test_overfitting_one_batch_drives_the_loss_down(arch, corpus):
    from stemsplit.data.cache import PreparedDataset
    from stemsplit.data.dataset import ExcerptDataset

    cfg = tiny_config(arch, FAST + ["model.dropout=0.0"])
    ds = PreparedDataset(corpus)
    excerpts = ExcerptDataset([ds], "train", cfg.stems, 11025, 4, None, seed=0)
    mixture = torch.stack([excerpts[i][0] for i in range(4)])
    sources = torch.stack([excerpts[i][1] for i in range(4)])
    torch.manual_seed(0)
    model = build_model(cfg)
    model.norm.set_stats(*[torch.from_numpy(a) for a in ds.magnitude_stats(cfg.stft.n_fft, cfg.stft.hop_length)])
    loss_fn = SeparationLoss(cfg)
    net = TrainForward(model, loss_fn.wants_logits)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(40):
        out = loss_fn(net, mixture, sources)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    if arch == "mask_cnn":  # the binary masks of one batch become mostly right
        assert out.mask_accuracy.mean().item() > 0.8, out.mask_accuracy


def test_run_folder_contents_and_metadata(corpus, tmp_path):
    out = tmp_path / "run"
    result = run_train(_options("unet", corpus, out))
    assert result.stopped_by == "epochs" and result.step == 8 and result.best_step >= 0
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "config.yaml", "run.json", "loss.png", "val_sdr.png"):
        assert (out / name).is_file(), name
    best = load_checkpoint(out / "best.ckpt")
    meta = best.meta
    assert meta["recipe"].endswith("unet.yaml") and meta["trained_on"] == [str(corpus)]
    assert meta["steps"] == result.best_step and set(meta["scores"]["sdr"]) == set(best.stems)
    assert "git" in meta and meta["epochs"] > 0
    assert "train_state" not in read_checkpoint(out / "best.ckpt")
    last = read_checkpoint(out / "last.ckpt")
    assert last["train_state"]["progress"]["finished"] is True
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    val = [r for r in rows if r["phase"] == "val"]
    assert len(val) == 2 and all(math.isfinite(float(r["sdr_mean"])) for r in val)
    assert float(_train_rows(out)[0]["excerpts_per_s"]) > 0
    # resuming a finished run is a no-op that says so
    again = run_train(TrainOptions(resume=out, device="cpu"))
    assert again.stopped_by == "already_finished" and again.step == 8


def test_max_steps_caps_and_still_validates_and_saves(corpus, tmp_path, capsys):
    # amp and compile are CUDA-only switches: on CPU they are reported and training goes on
    result = run_train(_options("lstm", corpus, tmp_path / "run",
                                ["train.max_steps=3", "train.amp=bf16", "train.compile=true"]))
    assert result.step == 3 and result.stopped_by == "max_steps"
    err = capsys.readouterr().err
    assert "train.amp=bf16 is used on CUDA only" in err and "train.compile is used on CUDA only" in err
    ckpt = read_checkpoint(tmp_path / "run" / "last.ckpt")
    assert ckpt["train_state"]["progress"]["last_val_step"] == 3
    assert (tmp_path / "run" / "best.ckpt").exists()
    # a finished run can be extended by raising the cap
    more = run_train(TrainOptions(resume=tmp_path / "run", device="cpu", overrides=["train.max_steps=5"]))
    assert more.step == 5 and more.stopped_by == "max_steps"


# --- resume, signals, corrupt checkpoints -------------------------------------------------------


def _send_at(step_wanted, sig):
    def hook(step):
        if step == step_wanted:
            os.kill(os.getpid(), sig)
    return hook


def test_interrupted_and_resumed_equals_uninterrupted(corpus, tmp_path):
    # lstm: dropout and BatchNorm, so the RNG and the buffers must both come back exactly
    full = run_train(_options("lstm", corpus, tmp_path / "full"))
    assert full.step == 8

    # handlers of our own: the run must replace them while it trains and put them back after
    def ours_int(signum, frame):
        raise AssertionError("SIGINT reached the caller's handler during training")

    def ours_term(signum, frame):
        raise AssertionError("SIGTERM reached the caller's handler during training")

    before = {sig: signal.signal(sig, h) for sig, h in ((signal.SIGINT, ours_int), (signal.SIGTERM, ours_term))}
    try:
        cut = run_train(_options("lstm", corpus, tmp_path / "cut"), on_step=_send_at(3, signal.SIGINT))
        after = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    finally:
        for sig, h in before.items():
            signal.signal(sig, h)
    assert after == {signal.SIGINT: ours_int, signal.SIGTERM: ours_term}  # handlers were restored
    assert cut.stopped_by == "SIGINT" and cut.step == 4  # the flag is read at the next step
    saved = read_checkpoint(tmp_path / "cut" / "last.ckpt")["train_state"]["progress"]
    assert saved["step"] == 4 and saved["finished"] is False

    resumed = run_train(TrainOptions(resume=tmp_path / "cut", device="cpu"))
    assert resumed.step == 8 and resumed.stopped_by == "epochs"
    a, b = _weights(tmp_path / "full" / "last.ckpt"), _weights(tmp_path / "cut" / "last.ckpt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert [r["loss"] for r in _train_rows(tmp_path / "full")] == [r["loss"] for r in _train_rows(tmp_path / "cut")]


def test_sigterm_saves_and_corrupt_last_falls_back_to_the_previous(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    cut = run_train(_options("lstm", corpus, run, ["train.checkpoint_every_steps=1"]),
                    on_step=_send_at(5, signal.SIGTERM))
    assert cut.stopped_by == "SIGTERM" and cut.step == 6
    assert read_checkpoint(run / "last.prev.ckpt")["train_state"]["progress"]["step"] == 5
    (run / "last.ckpt").write_bytes((run / "last.ckpt").read_bytes()[:1000])

    resumed = run_train(TrainOptions(resume=run, device="cpu"))
    assert resumed.step == 8
    assert "falling back to last.prev.ckpt" in capsys.readouterr().out
    assert (run / "last.ckpt.corrupt").exists()
    # continued from step 5; metrics.csv rows after step 5 were replaced, none duplicated
    steps = [int(r["step"]) for r in _train_rows(run)]
    assert steps == list(range(1, 9))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    class PoisonedLoss(SeparationLoss):
        calls = 0

        def __call__(self, net, mixture, sources, autocast=None):
            out = super().__call__(net, mixture, sources, autocast)
            if net.training:
                PoisonedLoss.calls += 1
                if PoisonedLoss.calls == 3:
                    return LossOutput(loss=out.loss * float("nan"), mask_accuracy=out.mask_accuracy)
            return out

    monkeypatch.setattr(loop_module, "SeparationLoss", PoisonedLoss)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"non-finite loss \(nan\) at step 3.*last.ckpt \(step 2\)"):
        run_train(_options("unet", corpus, run))
    kept = load_checkpoint(run / "last.ckpt")
    assert all(torch.isfinite(p).all() for p in kept.model.state_dict().values())
    assert read_checkpoint(run / "last.ckpt")["train_state"]["progress"]["step"] == 2


def test_early_stopping(corpus, tmp_path, monkeypatch):
    flat = ValResult(loss=1.0, sdr={s: 1.0 for s in ("vocals", "drums", "bass", "other")}, tracks=2)
    monkeypatch.setattr(loop_module, "validate", lambda *a, **k: flat)
    result = run_train(_options("lstm", corpus, tmp_path / "run",
                                ["train.val_every_steps=1", "train.early_stopping_patience=2"]))
    assert result.stopped_by == "early_stopping" and result.step == 3 and result.best_step == 1


def test_a_final_fit_keeps_its_latest_validation_as_best(corpus, tmp_path, monkeypatch):
    """data.train_on_valid: falling validation scores (on tracks it trains on) choose nothing;
    a plain run keeps its first, highest one."""
    scores = iter([3.0, 2.0, 1.0] * 2)
    monkeypatch.setattr(loop_module, "validate", lambda *a, **k: ValResult(
        loss=1.0, sdr={s: next(scores) if s == "vocals" else 1.0 for s in ("vocals", "drums", "bass", "other")}))
    plain = run_train(_options("lstm", corpus, tmp_path / "plain", ["train.val_every_steps=1", "train.max_steps=3"]))
    final = run_train(_options("lstm", corpus, tmp_path / "final", ["train.val_every_steps=1", "train.max_steps=3",
                                                                    "data.train_on_valid=true"]))
    assert plain.best_step == 1 and final.best_step == 3
    assert read_checkpoint(tmp_path / "final" / "best.ckpt")["meta"]["best_step"] == 3
    with pytest.raises(ConfigError, match="data.train_on_valid: a final fit may not steer"):
        run_train(_options("lstm", corpus, tmp_path / "stops", ["data.train_on_valid=true",
                                                                "train.early_stopping_patience=2"]))
