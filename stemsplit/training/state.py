"""Resume state and the run folder's checkpoints.

``last.ckpt`` is an ordinary stemsplit checkpoint (``stemsplit separate`` can use it) with a
``train_state`` entry: optimizer, schedule, AMP scaler, RNG states, step, epoch, best score.
Before a new ``last.ckpt`` is written the current one becomes ``last.prev.ckpt``, and every
write is atomic, so a crash at any moment leaves at least one complete checkpoint; a
``last.ckpt`` that is damaged later is skipped with a warning in favour of the previous one.
"""
from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from stemsplit.checkpoint import CheckpointError, read_checkpoint, save_checkpoint

LAST = "last.ckpt"
PREV = "last.prev.ckpt"
BEST = "best.ckpt"


@dataclass
class Progress:
    """Where a run is: counters and the early-stopping bookkeeping."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed
    best_score: float = -math.inf  # best mean validation SDR (dB)
    best_step: int = -1
    bad_validations: int = 0  # validations since the best one (early stopping)
    last_val_step: int = -1  # the step of the latest validation
    last_saved_step: int = -1  # the step of the newest last.ckpt
    finished: bool = False
    scores: dict = field(default_factory=dict)  # the latest validation's figures
    train_seconds: float = 0.0  # wall seconds spent training, summed over resumed runs

    def already_finished(self, total_steps: int, epochs: int) -> bool:
        """A run that ended at its step or epoch budget: resuming it has nothing left to do."""
        return self.finished and (self.step >= total_steps or self.epoch >= epochs)

    def is_new_best(self, score: float, final_fit: bool) -> bool:
        """Whether a validation ``score`` makes the best checkpoint. A final fit
        (``data.train_on_valid``) trains on its validation tracks, so it picks nothing by them:
        its best checkpoint is always the latest validated one."""
        return score > self.best_score or self.best_step < 0 or final_fit

    def start_clock(self) -> None:
        """Start counting this process's training time on top of what earlier runs spent."""
        self._clock = (time.perf_counter(), self.train_seconds)

    def tick(self) -> float:
        """Bring ``train_seconds`` up to now; returns it."""
        start, base = getattr(self, "_clock", (time.perf_counter(), self.train_seconds))
        self.train_seconds = base + time.perf_counter() - start
        return self.train_seconds

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Progress:
        return cls(**raw)


# --- random number generators ------------------------------------------------------------


def capture_rng() -> dict:
    """Every global RNG's state as plain types and tensors (``weights_only`` safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


# --- checkpoints in the run folder --------------------------------------------------------


def save_last(run_dir: Path, model, cfg, meta: dict, train_state: dict) -> Path:
    """Rotate ``last.ckpt`` to ``last.prev.ckpt``, then write the new one atomically."""
    last = run_dir / LAST
    if last.exists():
        os.replace(last, run_dir / PREV)
    save_checkpoint(last, model, cfg, meta=meta, train_state=train_state)
    return last


def save_best(run_dir: Path, model, cfg, meta: dict) -> Path:
    path = run_dir / BEST
    save_checkpoint(path, model, cfg, meta=meta)
    return path


def load_resume_checkpoint(run_dir: Path, warn: Callable[[str], None] | None = None) -> tuple[dict, Path]:
    """The newest usable checkpoint with a train state: ``last.ckpt``, else ``last.prev.ckpt``.

    A damaged ``last.ckpt`` is renamed to ``last.ckpt.corrupt`` (kept for inspection, never
    rotated over the good previous one) and a warning names it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {run_dir}: no such run folder")
    problems = []
    for name in (LAST, PREV):
        path = run_dir / name
        if not path.exists():
            problems.append(f"{name} missing")
            continue
        try:
            ckpt = read_checkpoint(path)
            if "train_state" not in ckpt:
                raise CheckpointError(f"{path} holds no training state (is it a best.ckpt?)")
        except CheckpointError as exc:
            problems.append(str(exc))
            if name == LAST:
                corrupt = path.with_name(LAST + ".corrupt")
                os.replace(path, corrupt)
                message = (f"{path} is unusable ({exc}); moved it to {corrupt.name} and "
                           f"falling back to {PREV}")
                if warn is None:
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
                else:
                    warn(message)
            continue
        return ckpt, path
    raise CheckpointError(f"--resume {run_dir}: no usable checkpoint ({'; '.join(problems)}); "
                          f"start a new run with --config ... --out ...")
