"""One training loop for every model: steps, validation, checkpoints, early stopping.

A step: fetch a batch -> loss (the family's, see ``losses.py``) -> one all-reduce of
[loss, non-finite flag, stop flag, accuracies] so every rank takes the same decisions ->
backward (DDP syncs gradients) -> clip -> AdamW. Validation runs once per epoch or every
``train.val_every_steps``; ``last.ckpt`` is written every ``train.checkpoint_every_steps``, at
each epoch end, on SIGINT/SIGTERM and at the end; ``best.ckpt`` whenever the mean validation
SDR improves. ``train.max_steps`` caps the run and the end still validates and saves.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from stemsplit.config import Config
from stemsplit.data.cache import PreparedDataset
from stemsplit.errors import StemsplitError
from stemsplit.training.checks import check_train_config
from stemsplit.training.distributed import DistContext, all_reduce_sum, barrier, gather_objects
from stemsplit.training.logging import (
    Interval,
    MetricsLog,
    ProgressReporter,
    TensorBoardLog,
    metric_columns,
    write_plots,
)
from stemsplit.training.losses import SeparationLoss
from stemsplit.training.schedule import LRSchedule
from stemsplit.training.setup import build_data_parts, build_model_parts
from stemsplit.training.signals import StopRequest
from stemsplit.training.state import Progress, capture_rng, restore_rng, save_best, save_last
from stemsplit.training.validate import ValResult, validate

MAX_SKIPPED_FP16_STEPS = 50  # consecutive overflowing steps before an fp16 run counts as diverged


class TrainingDiverged(StemsplitError, RuntimeError):
    """A non-finite loss or gradient; the message names the step and the checkpoint kept."""

    exit_code = 1  # the input was fine; the run itself failed


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    best_score: float
    best_step: int
    stopped_by: str  # max_steps | epochs | early_stopping | SIGINT | SIGTERM | already_finished
    scores: dict


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, datasets: list[PreparedDataset], ctx: DistContext, *,
                 meta: dict | None = None, resume: dict | None = None, init_state: dict | None = None,
                 tty: bool = False,
                 console: Console | None = None, on_step: Callable[[int], None] | None = None):
        check_train_config(cfg)
        self._early: list[str] = []  # messages from before the progress display exists
        self.cfg, self.run_dir, self.ctx = cfg, Path(run_dir), ctx
        self.static_meta = dict(meta or {})
        self.on_step = on_step
        self.stems = list(cfg.stems)
        self.dataset = datasets[0]
        self.loss_fn = SeparationLoss(cfg)
        self.with_acc = self.loss_fn.reports_accuracy
        self.tb = TensorBoardLog(self.run_dir) if cfg.train.tensorboard and ctx.is_main else None
        self.data = build_data_parts(cfg, datasets, ctx)
        if cfg.data.train_on_valid:
            self._early.append(f"final fit: training on the valid split of {self.dataset.root} too, so this run's "
                               "validation scores are not held out and choose nothing (best.ckpt is the latest "
                               "validated step); fix the step count from a run without it")
        self.parts = build_model_parts(cfg, self.loss_fn, ctx, self.dataset,
                                       resume["state_dict"] if resume else init_state, self._say_early)
        t = cfg.train
        spe = self.data.steps_per_epoch
        self.total_steps = min(t.epochs * spe, t.max_steps) if t.max_steps else t.epochs * spe
        self.schedule = LRSchedule(t, self.total_steps)
        self.progress = Progress()
        self._skipped = 0
        if resume is not None:
            self._load_train_state(resume["train_state"])
        self.metrics = None
        if ctx.is_main:
            self.metrics = MetricsLog(self.run_dir / "metrics.csv", metric_columns(self.stems, self.with_acc),
                                      resume_step=self.progress.step if resume else None)
        self.reporter = ProgressReporter(self.total_steps, self.progress.step, tty=tty, console=console,
                                         enabled=ctx.is_main, log_every=t.log_every_steps)
        for text in self._early:
            self.reporter.message(text)

    def _say_early(self, text: str) -> None:
        self._early.append(text)

    # --- resume --------------------------------------------------------------------------------

    def _load_train_state(self, ts: dict) -> None:
        p = self.parts
        p.optimizer.load_state_dict(ts["optimizer"])
        self.schedule.load_state_dict(ts["schedule"])
        if p.scaler.is_enabled() and ts.get("scaler"):
            p.scaler.load_state_dict(ts["scaler"])
        self.progress = Progress.from_dict(ts["progress"])
        rngs = ts["rng"]
        if len(rngs) == self.ctx.world_size:
            restore_rng(rngs[self.ctx.rank])
        else:
            torch.manual_seed(self.cfg.train.seed + self.ctx.rank + self.progress.step)
            self._early.append(f"resuming on {self.ctx.world_size} process(es) a run saved on {len(rngs)}: "
                               "training continues, but not bit for bit")

    # --- checkpoints ---------------------------------------------------------------------------

    def _meta(self) -> dict:
        p = self.progress
        return {**self.static_meta, "steps": p.step, "epochs": round(p.step / self.data.steps_per_epoch, 3),
                "scores": dict(p.scores), "best_step": p.best_step, "train_minutes": round(p.tick() / 60, 3),
                "effective_batch_size": self.cfg.train.batch_size * self.ctx.world_size,
                "world_size": self.ctx.world_size}

    def _save_last(self) -> None:
        """Every rank calls this (it gathers every rank's RNG state); rank 0 writes."""
        self.progress.tick()
        rngs = gather_objects(capture_rng(), self.ctx)
        self.progress.last_saved_step = self.progress.step
        if self.ctx.is_main:
            state = {"progress": self.progress.to_dict(), "optimizer": self.parts.optimizer.state_dict(),
                     "schedule": self.schedule.state_dict(), "scaler": self.parts.scaler.state_dict(),
                     "rng": rngs, "world_size": self.ctx.world_size}
            save_last(self.run_dir, self.parts.model, self.cfg, self._meta(), state)
        barrier(self.ctx)

    # --- validation ----------------------------------------------------------------------------

    def _validate(self) -> bool:
        """Validate, keep the best checkpoint; True when early stopping says stop."""
        p, t = self.progress, self.cfg.train
        res = validate(self.parts.model, self.cfg, self.loss_fn, self.data.val_set, self.dataset, self.ctx)
        score = res.sdr_mean
        improved = p.is_new_best(score, self.cfg.data.train_on_valid)
        if improved:
            p.best_score, p.best_step, p.bad_validations = score, p.step, 0
        else:
            p.bad_validations += 1
        reduced = self.schedule.on_validation(score)
        p.scores, p.last_val_step = res.scores(), p.step
        if self.ctx.is_main:
            if improved:
                save_best(self.run_dir, self.parts.model, self.cfg, self._meta())
            self._log_validation(res, improved, reduced)
        return bool(t.early_stopping_patience) and p.bad_validations >= t.early_stopping_patience

    def _log_validation(self, res: ValResult, improved: bool, reduced: bool) -> None:
        p = self.progress
        row = {"step": p.step, "epoch": p.epoch, "phase": "val", "loss": res.loss,
               "lr": self.schedule.lr(p.step), "wall_time": time.perf_counter() - self._t_start,
               "sdr_mean": res.sdr_mean, **{f"sdr_{s}": v for s, v in res.sdr.items()},
               **{f"acc_{s}": v for s, v in res.accuracy.items()}}
        self._record(row)
        write_plots(self.metrics.rows, self.run_dir, self.stems, self.with_acc)
        self.reporter.message(res.line(p.step, improved, p.best_score, p.best_step)
                              + ("  lr reduced" if reduced else ""))

    # --- one step ------------------------------------------------------------------------------

    def _step(self, mixture: torch.Tensor, sources: torch.Tensor,
              stop: StopRequest) -> tuple[torch.Tensor, float, bool]:
        """One optimizer step; returns (all-reduced [loss, flags, accuracies], grad norm, stop?)."""
        parts, p = self.parts, self.progress
        self.schedule.apply(parts.optimizer, p.step)
        out = self.loss_fn(parts.net, mixture, sources, autocast=parts.autocast())
        local = torch.zeros(3 + len(self.stems), dtype=torch.float64)
        local[0] = out.loss.detach().item()
        local[1] = 0.0 if math.isfinite(local[0].item()) else 1.0
        local[2] = 1.0 if stop.requested else 0.0
        if out.mask_accuracy is not None:
            local[3:] = out.mask_accuracy.double().cpu()
        totals = all_reduce_sum(local, self.ctx) / self.ctx.world_size
        if totals[1] > 0:
            raise TrainingDiverged(self._diverged_message("loss", local[0].item()))
        parts.optimizer.zero_grad(set_to_none=True)
        parts.scaler.scale(out.loss).backward()
        parts.scaler.unscale_(parts.optimizer)
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parts.model.parameters(), clip))
        if not math.isfinite(grad_norm):
            self._skipped += 1
            if not parts.scaler.is_enabled() or self._skipped >= MAX_SKIPPED_FP16_STEPS:
                raise TrainingDiverged(self._diverged_message("gradient norm", grad_norm))
        else:
            self._skipped = 0
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        return totals, grad_norm, totals[2] > 0

    def _diverged_message(self, what: str, value: float) -> str:
        p = self.progress
        kept = (f"the last good checkpoint is {self.run_dir / 'last.ckpt'} (step {p.last_saved_step})"
                if p.last_saved_step >= 0 else "no checkpoint had been written yet")
        return (f"training stopped: non-finite {what} ({value}) at step {p.step + 1}, epoch {p.epoch}; {kept}. "
                f"Lower train.lr, set train.grad_clip or use train.amp=none, then continue with "
                f"'stemsplit train --resume {self.run_dir} --set train.lr=...'")

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self._t_start = time.perf_counter()
        p = self.progress
        p.start_clock()
        if p.already_finished(self.total_steps, self.cfg.train.epochs):
            self.reporter.message(f"{self.run_dir}: this run already finished at step {p.step}; "
                                  "raise train.max_steps or train.epochs with --set to train on")
            return self._result("already_finished")
        p.finished = False
        try:
            with StopRequest() as stop:
                stopped_by = self._loop(stop)
        finally:
            self.reporter.close()
            if self.tb is not None:
                self.tb.close()
        return self._result(stopped_by)

    def _result(self, stopped_by: str) -> TrainResult:
        p = self.progress
        return TrainResult(run_dir=self.run_dir, step=p.step, epoch=p.epoch, best_score=p.best_score,
                           best_step=p.best_step, stopped_by=stopped_by, scores=dict(p.scores))

    def _loop(self, stop: StopRequest) -> str:
        p, t = self.progress, self.cfg.train
        interval = Interval(len(self.stems))
        reason = self._epochs(stop, interval)
        if reason in ("SIGINT", "SIGTERM"):
            if p.last_saved_step != p.step:
                self._save_last()
            self.reporter.message(f"stopped by {reason} at step {p.step}; saved {self.run_dir / 'last.ckpt'}; "
                                  f"continue with 'stemsplit train --resume {self.run_dir}'")
            return reason
        if interval.steps and self.ctx.is_main:
            self._log_train(interval)
        if p.last_val_step != p.step:
            self._validate()
        p.finished = True
        self._save_last()
        if reason == "early_stopping":
            self.reporter.message(f"early stopping at step {p.step}: no improvement in "
                                  f"{t.early_stopping_patience} validations")
        return reason

    def _epochs(self, stop: StopRequest, interval: Interval) -> str:
        """Run until the end, early stopping or a signal; returns which of them happened."""
        p, d, t, ctx = self.progress, self.data, self.cfg.train, self.ctx
        while p.step < self.total_steps and p.epoch < t.epochs:
            d.train_set.set_epoch(p.epoch)
            d.sampler.set_position(p.epoch, p.batch_in_epoch)
            d.loader.generator.manual_seed(t.seed + p.epoch)
            batches = iter(d.loader)
            while p.step < self.total_steps:
                t0 = time.perf_counter()
                try:
                    mixture, sources = next(batches)
                except StopIteration:
                    break
                t_data = time.perf_counter() - t0
                totals, grad_norm, stop_now = self._step(mixture, sources, stop)
                p.step += 1
                p.batch_in_epoch += 1
                interval.add(totals, grad_norm, t_data, time.perf_counter() - t0)
                self.reporter.step(p.step, p.epoch, float(totals[0]), self.schedule.lr(p.step - 1))
                if self.on_step is not None:
                    self.on_step(p.step)
                if p.step % t.log_every_steps == 0 and ctx.is_main:
                    self._log_train(interval)
                if t.val_every_steps and p.step % t.val_every_steps == 0 and self._validate():
                    return "early_stopping"
                if p.step % t.checkpoint_every_steps == 0:
                    self._save_last()
                if stop_now:
                    return stop.signal_name or "SIGINT"
            if p.batch_in_epoch >= d.steps_per_epoch:
                p.epoch += 1
                p.batch_in_epoch = 0
                early = not t.val_every_steps and self._validate()
                self._save_last()
                if early:
                    return "early_stopping"
        return "max_steps" if p.step >= self.total_steps and p.epoch < t.epochs else "epochs"

    def _log_train(self, acc: Interval) -> None:
        p = self.progress
        row = {"step": p.step, "epoch": p.epoch, "phase": "train", "lr": self.schedule.lr(p.step - 1),
               "wall_time": time.perf_counter() - self._t_start,
               **acc.fields(self.cfg.train.batch_size * self.ctx.world_size, self.stems if self.with_acc else [])}
        self._record(row)
        acc.reset()

    def _record(self, row: dict) -> None:
        self.metrics.append(row)
        if self.tb is not None:
            self.tb.add(row)
