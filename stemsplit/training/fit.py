"""Fitting, the training loop's counterpart for models learnt without gradients.

A model whose contract says ``trained_by = "fit"`` (a dictionary model, say) goes through
the same run as any other: the same excerpts from the same loader (``build_data_parts``), the
same validation (``validate.py``: the loss on fixed excerpts and global SDR on whole valid
tracks, through the separation engine), the same ``metrics.csv``, ``best.ckpt`` and
``last.ckpt``, and the same resume and SIGINT/SIGTERM handling. Only the step differs: each
batch's mixture and stem magnitudes go to ``model.fit_step``, with no loss to differentiate
and no optimizer; ``model.finish_fit`` runs once when the run ends.

Fitting runs in one process: under torchrun it refuses with a one-line error.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console

from stemsplit.audio.stft import STFT
from stemsplit.config import Config, ConfigError
from stemsplit.data.cache import PreparedDataset
from stemsplit.models import build_model
from stemsplit.training.checks import check_train_config
from stemsplit.training.distributed import DistContext
from stemsplit.training.logging import MetricsLog, ProgressReporter, metric_columns, write_plots
from stemsplit.training.loop import TrainResult
from stemsplit.training.losses import SeparationLoss
from stemsplit.training.setup import build_data_parts, seed_everything
from stemsplit.training.signals import StopRequest
from stemsplit.training.state import Progress, capture_rng, restore_rng, save_best, save_last
from stemsplit.training.validate import validate


class Fitter:
    """Same arguments and result as ``loop.Trainer``; ``run()`` fits, validates and saves."""

    def __init__(self, cfg: Config, run_dir: Path, datasets: list[PreparedDataset], ctx: DistContext, *,
                 meta: dict | None = None, resume: dict | None = None, init_state: dict | None = None,
                 tty: bool = False, console: Console | None = None,
                 on_step: Callable[[int], None] | None = None):
        check_train_config(cfg)
        if ctx.distributed:
            raise ConfigError(f"model.name: {cfg.model.name!r} is fitted without gradients and runs in one "
                              "process; start it with 'stemsplit train', not under torchrun")
        self.cfg, self.run_dir, self.ctx = cfg, Path(run_dir), ctx
        self.static_meta, self.on_step = dict(meta or {}), on_step
        self.stems = list(cfg.stems)
        self.dataset = datasets[0]
        self.loss_fn = SeparationLoss(cfg)  # the validation loss, as for any model
        self.data = build_data_parts(cfg, datasets, ctx)
        seed_everything(cfg.train.seed)
        self.model = build_model(cfg)
        state = resume["state_dict"] if resume else init_state
        if state is not None:
            self.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        elif self.model.spectral:
            mean, std = self.dataset.magnitude_stats(cfg.stft.n_fft, cfg.stft.hop_length)
            self.model.set_input_stats(torch.from_numpy(mean), torch.from_numpy(std))
        self.model.to(ctx.device).eval()  # no dropout or batch statistics: fitting is not training mode
        self.stft = STFT(cfg.stft)
        t, spe = cfg.train, self.data.steps_per_epoch
        self.total_steps = min(t.epochs * spe, t.max_steps) if t.max_steps else t.epochs * spe
        self.progress = Progress()
        if resume is not None:
            self.progress = Progress.from_dict(resume["train_state"]["progress"])
            restore_rng(resume["train_state"]["rng"][0])
        self.metrics = MetricsLog(self.run_dir / "metrics.csv", metric_columns(self.stems, False),
                                  resume_step=self.progress.step if resume else None)
        self.reporter = ProgressReporter(self.total_steps, self.progress.step, tty=tty, console=console,
                                         log_every=t.log_every_steps)

    # --- checkpoints and validation ------------------------------------------------------------

    def _meta(self) -> dict:
        p = self.progress
        return {**self.static_meta, "steps": p.step, "epochs": round(p.step / self.data.steps_per_epoch, 3),
                "scores": dict(p.scores), "best_step": p.best_step, "train_minutes": round(p.tick() / 60, 3),
                "effective_batch_size": self.cfg.train.batch_size, "world_size": 1, "trained_by": "fit"}

    def _save_last(self) -> None:
        self.progress.last_saved_step = self.progress.step
        self.progress.tick()
        state = {"progress": self.progress.to_dict(), "rng": [capture_rng()], "world_size": 1}
        save_last(self.run_dir, self.model, self.cfg, self._meta(), state)

    def _validate(self) -> None:
        p = self.progress
        res = validate(self.model, self.cfg, self.loss_fn, self.data.val_set, self.dataset, self.ctx)
        self.model.eval()  # validate leaves a model in train mode
        improved = p.is_new_best(res.sdr_mean, self.cfg.data.train_on_valid)
        if improved:
            p.best_score, p.best_step = res.sdr_mean, p.step
            save_best(self.run_dir, self.model, self.cfg, self._meta() | {"scores": res.scores()})
        p.scores, p.last_val_step = res.scores(), p.step
        self.metrics.append({"step": p.step, "epoch": p.epoch, "phase": "val", "loss": res.loss,
                             "wall_time": time.perf_counter() - self._t_start, "sdr_mean": res.sdr_mean,
                             **{f"sdr_{s}": v for s, v in res.sdr.items()}})
        write_plots(self.metrics.rows, self.run_dir, self.stems, False)
        self.reporter.message(res.line(p.step, improved, p.best_score, p.best_step))

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self._t_start = time.perf_counter()
        p = self.progress
        p.start_clock()
        if p.already_finished(self.total_steps, self.cfg.train.epochs):
            self.reporter.message(f"{self.run_dir}: this run already finished at step {p.step}; "
                                  "raise train.max_steps or train.epochs with --set to fit on")
            self.reporter.close()
            return self._result("already_finished")
        p.finished = False
        try:
            with StopRequest() as stop:
                reason = self._epochs(stop)
        finally:
            self.reporter.close()
        if reason in ("SIGINT", "SIGTERM"):
            self._save_last()
            self.reporter.message(f"stopped by {reason} at step {p.step}; saved {self.run_dir / 'last.ckpt'}; "
                                  f"continue with 'stemsplit train --resume {self.run_dir}'")
            return self._result(reason)
        self.model.finish_fit()
        if p.last_val_step != p.step:
            self._validate()
        p.finished = True
        self._save_last()
        return self._result(reason)

    def _result(self, stopped_by: str) -> TrainResult:
        p = self.progress
        return TrainResult(run_dir=self.run_dir, step=p.step, epoch=p.epoch, best_score=p.best_score,
                           best_step=p.best_step, stopped_by=stopped_by, scores=dict(p.scores))

    @torch.no_grad()
    def _epochs(self, stop: StopRequest) -> str:
        p, d, t = self.progress, self.data, self.cfg.train
        while p.step < self.total_steps and p.epoch < t.epochs:
            d.train_set.set_epoch(p.epoch)
            d.sampler.set_position(p.epoch, p.batch_in_epoch)
            d.loader.generator.manual_seed(t.seed + p.epoch)
            for mixture, sources in d.loader:
                if p.step >= self.total_steps:
                    break
                t0 = time.perf_counter()
                loss = self.model.fit_step(self.stft(mixture.float()).abs(), self.stft(sources.float()).abs())
                p.step += 1
                p.batch_in_epoch += 1
                self.reporter.step(p.step, p.epoch, loss, 0.0)
                if self.on_step is not None:
                    self.on_step(p.step)
                if p.step % t.log_every_steps == 0:
                    self.metrics.append({"step": p.step, "epoch": p.epoch, "phase": "train", "loss": loss,
                                         "excerpts_per_s": t.batch_size / max(time.perf_counter() - t0, 1e-9),
                                         "s_per_step": time.perf_counter() - t0,
                                         "wall_time": time.perf_counter() - self._t_start})
                if t.val_every_steps and p.step % t.val_every_steps == 0:
                    self._validate()
                if p.step % t.checkpoint_every_steps == 0:
                    self._save_last()
                if stop.requested:
                    return stop.signal_name or "SIGINT"
            if p.batch_in_epoch >= d.steps_per_epoch:
                p.epoch += 1
                p.batch_in_epoch = 0
                if not t.val_every_steps:
                    self._validate()
                self._save_last()
        return "max_steps" if p.step >= self.total_steps and p.epoch < t.epochs else "epochs"
