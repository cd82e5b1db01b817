"""Training building blocks: schedule, losses, resume state, signals, metrics log, data order."""
from __future__ import annotations

import os
import random
import signal

import numpy as np
import pytest
import torch
from conftest import tiny_config

from stemsplit.checkpoint import CheckpointError, read_checkpoint
from stemsplit.config import ConfigError
from stemsplit.models import build_model
from stemsplit.training.checks import check_train_config
from stemsplit.training.logging import MetricsLog, metric_columns, write_plots
from stemsplit.training.losses import SeparationLoss, TrainForward, multi_resolution_stft_loss, resolve_loss
from stemsplit.training.sampler import ResumableSampler
from stemsplit.training.schedule import COSINE_FLOOR, LRSchedule, lr_factor
from stemsplit.training.signals import StopRequest
from stemsplit.training.state import LAST, PREV, capture_rng, load_resume_checkpoint, restore_rng, save_last

STEMS = ["vocals", "drums", "bass", "other"]


# --- schedule ---------------------------------------------------------------------------------


def test_warmup_then_cosine_then_constant():
    f = [lr_factor(s, warmup_steps=10, total_steps=110, schedule="cosine") for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert f[60] == pytest.approx(COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(110, warmup_steps=10, total_steps=110, schedule="cosine") == pytest.approx(COSINE_FLOOR)
    assert lr_factor(50, warmup_steps=10, total_steps=110, schedule="constant") == 1.0


def test_plateau_reduces_after_patience_and_round_trips():
    cfg = tiny_config("lstm", ["train.schedule=plateau", "train.plateau_patience=2",
                               "train.plateau_factor=0.5", "train.warmup_steps=0"]).train
    sched = LRSchedule(cfg, total_steps=100)
    assert sched.lr(5) == pytest.approx(cfg.lr)
    assert [sched.on_validation(s) for s in (1.0, 2.0, 1.5, 1.9)] == [False, False, False, True]
    assert sched.lr(5) == pytest.approx(cfg.lr * 0.5)
    again = LRSchedule(cfg, total_steps=100)
    again.load_state_dict(sched.state_dict())
    assert again.lr(5) == sched.lr(5)


# --- losses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch,expected", [("mask_cnn", "bce"), ("lstm", "mse"), ("unet", "l1")])
def test_auto_loss_per_family(arch, expected):
    assert resolve_loss(tiny_config(arch, ["train.loss=auto"])) == expected


def test_bce_needs_logits():
    with pytest.raises(ConfigError, match="bce"):
        resolve_loss(tiny_config("lstm", ["train.loss=bce"]))


class _OracleMasks(torch.nn.Module):
    """Returns fixed masks/logits, whatever the input."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, mag):
        return self.out


def _batch(cfg, seed=0, frames=8192):
    g = torch.Generator().manual_seed(seed)
    sources = 0.1 * torch.randn(2, len(cfg.stems), 2, frames, generator=g)
    return sources.sum(1), sources


def test_mask_cnn_bce_target_and_accuracy():
    cfg = tiny_config("mask_cnn", ["train.loss=bce", "train.mask_threshold=0.5"])
    loss_fn = SeparationLoss(cfg)
    mixture, sources = _batch(cfg)
    mix_mag = loss_fn.stft(mixture).abs()
    target = (loss_fn.stft(sources).abs() > 0.5 * mix_mag.unsqueeze(1)).float()
    perfect = loss_fn(_OracleMasks(20 * (2 * target - 1)), mixture, sources)
    assert torch.allclose(perfect.mask_accuracy, torch.ones(4))
    assert perfect.loss.item() < 1e-6
    wrong = loss_fn(_OracleMasks(-20 * (2 * target - 1)), mixture, sources)
    assert torch.allclose(wrong.mask_accuracy, torch.zeros(4)) and wrong.loss.item() > 10


def test_magnitude_losses_are_zero_for_ideal_ratio_masks():
    for arch, kind in (("lstm", "mse"), ("unet", "l1"), ("lstm", "mrstft")):
        cfg = tiny_config(arch, [f"train.loss={kind}"])
        loss_fn = SeparationLoss(cfg)
        mixture, sources = _batch(cfg)
        src_spec = loss_fn.stft(sources)
        mix_spec = loss_fn.stft(mixture)
        # complex ideal masks are not in [0, 1]; for a zero loss use one stem = the whole mixture
        sources = torch.cat([mixture[:, None], torch.zeros_like(sources[:, 1:])], dim=1)
        masks = torch.zeros(src_spec.shape)
        masks[:, 0] = 1.0
        ideal = loss_fn(_OracleMasks(masks), mixture, sources)
        assert ideal.loss.item() < 1e-4, (arch, kind)
        assert ideal.mask_accuracy is None
        off = loss_fn(_OracleMasks(torch.full(masks.shape, 0.5)), mixture, sources)
        assert off.loss.item() > 10 * max(ideal.loss.item(), 1e-6)
        assert mix_spec.shape == src_spec.shape[:1] + src_spec.shape[2:]


def test_time_loss_term_adds():
    cfg = tiny_config("unet", ["train.loss=l1", "train.time_loss_weight=1.0"])
    plain = SeparationLoss(tiny_config("unet", ["train.loss=l1"]))
    mixture, sources = _batch(cfg)
    masks = torch.full((2, 4, 2, plain.stft.n_bins, 8192 // 128 + 1), 0.25)
    with_time = SeparationLoss(cfg)(_OracleMasks(masks), mixture, sources).loss
    without = plain(_OracleMasks(masks), mixture, sources).loss
    expected = torch.nn.functional.l1_loss(mixture[:, None].expand_as(sources) * 0.25, sources)
    assert (with_time - without).item() == pytest.approx(expected.item(), rel=1e-3)


def test_mrstft_is_zero_for_equal_signals_and_positive_otherwise():
    x = torch.randn(2, 8000)
    assert multi_resolution_stft_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert multi_resolution_stft_loss(0.5 * x, x).item() > 0.1


def test_train_forward_gives_logits_only_for_bce():
    cfg = tiny_config("mask_cnn")
    model = build_model(cfg).eval()
    mag = torch.rand(1, 2, cfg.n_bins, 30)
    logits = TrainForward(model, logits=True)(mag)
    assert torch.allclose(torch.sigmoid(logits), TrainForward(model, logits=False)(mag), atol=1e-6)


# --- config checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("override,match", [
    ("train.batch_size=0", "train.batch_size"), ("train.lr=-1", "train.lr"),
    ("data.excerpt_seconds=0.01", "data.excerpt_seconds"), ("train.plateau_factor=1.5", "plateau_factor"),
    ("train.max_steps=-3", "train.max_steps"), ("train.loss=bce", "bce"),
])
def test_bad_training_values_fail_with_their_key(override, match):
    with pytest.raises(ConfigError, match=match):
        check_train_config(tiny_config("lstm", [override]))


# --- resume state -----------------------------------------------------------------------------


def test_rng_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = capture_rng()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.save(state, tmp_path / "rng.pt")
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_last_checkpoint_rotation_and_corrupt_fallback(tmp_path):
    cfg = tiny_config("lstm")
    model = build_model(cfg)
    for step in (1, 2):
        save_last(tmp_path, model, cfg, {"steps": step}, {"progress": {"step": step}})
    assert read_checkpoint(tmp_path / PREV)["train_state"]["progress"]["step"] == 1
    ckpt, path = load_resume_checkpoint(tmp_path)
    assert path.name == LAST and ckpt["train_state"]["progress"]["step"] == 2

    data = (tmp_path / LAST).read_bytes()
    (tmp_path / LAST).write_bytes(data[: len(data) // 3])
    warnings = []
    ckpt, path = load_resume_checkpoint(tmp_path, warn=warnings.append)
    assert path.name == PREV and ckpt["train_state"]["progress"]["step"] == 1
    assert len(warnings) == 1 and "last.ckpt" in warnings[0] and PREV in warnings[0]
    assert (tmp_path / "last.ckpt.corrupt").exists() and not (tmp_path / LAST).exists()

    (tmp_path / PREV).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        load_resume_checkpoint(tmp_path, warn=warnings.append)


def test_resume_of_a_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="no such run folder"):
        load_resume_checkpoint(tmp_path / "nope")


# --- signals ----------------------------------------------------------------------------------


def test_stop_request_catches_sigterm_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            if stop.requested:
                break
        assert stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_sigint_interrupts_at_once():
    with StopRequest() as stop:
        stop.request("SIGINT")
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass


# --- metrics log and plots --------------------------------------------------------------------


def test_metrics_log_drops_rows_after_the_resumed_step_and_plots(tmp_path):
    cols = metric_columns(STEMS, with_accuracy=True)
    log = MetricsLog(tmp_path / "metrics.csv", cols)
    for step in range(1, 7):
        log.append({"step": step, "epoch": 0, "phase": "train", "loss": 1.0 / step})
    log.append({"step": 6, "epoch": 1, "phase": "val", "loss": 0.5, "sdr_mean": 1.5,
                **{f"sdr_{s}": float(i) for i, s in enumerate(STEMS)},
                **{f"acc_{s}": 0.7 for s in STEMS}})
    resumed = MetricsLog(tmp_path / "metrics.csv", cols, resume_step=4)
    assert [int(r["step"]) for r in resumed.rows] == [1, 2, 3, 4]
    text = (tmp_path / "metrics.csv").read_text().splitlines()
    assert text[0].split(",") == cols and len(text) == 5
    write_plots(log.rows, tmp_path, STEMS, with_accuracy=True)
    for name in ("loss.png", "val_sdr.png", "mask_accuracy.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_tensorboard_without_the_package_is_a_config_error(tmp_path, monkeypatch):
    import sys

    from stemsplit.training.logging import TensorBoardLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails
    with pytest.raises(ConfigError, match="train.tensorboard: the 'tensorboard' package"):
        TensorBoardLog(tmp_path)


# --- data order -------------------------------------------------------------------------------


def test_two_ranks_deal_out_the_single_process_batches():
    data = list(range(37))
    single = list(ResumableSampler(data, num_replicas=1, rank=0, seed=5, batch_size=8))
    ranks = [list(ResumableSampler(data, num_replicas=2, rank=r, seed=5, batch_size=4)) for r in (0, 1)]
    for k in range(len(single) // 8):
        assert sorted(ranks[0][4 * k:4 * k + 4] + ranks[1][4 * k:4 * k + 4]) == sorted(single[8 * k:8 * k + 8])
    resumed = ResumableSampler(data, num_replicas=1, rank=0, seed=5, batch_size=8)
    resumed.set_position(0, 2)
    assert list(resumed) == single[16:] and len(resumed) == len(single) - 16
    resumed.set_position(1, 0)
    assert list(resumed) != single
