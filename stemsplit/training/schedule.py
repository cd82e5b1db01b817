"""Learning-rate schedule: linear warm-up, then cosine decay, plateau halving, or constant.

The rate is a pure function of the step (plus, for ``plateau``, of how many times it has been
reduced), so resuming only needs the small ``state_dict`` below, never an optimizer-bound
scheduler object.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from stemsplit.config import TrainConfig

# Cosine decays to this fraction of the peak rate rather than to zero: the last steps of a
# short run still move the weights.
COSINE_FLOOR = 0.01


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of ``train.lr`` for optimizer step ``step`` (0-based); warm-up, then the shape."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


@dataclass
class PlateauState:
    """Validation-driven part of the ``plateau`` schedule: the scale and its patience counter."""

    scale: float = 1.0
    best: float = -math.inf
    bad_validations: int = 0


class LRSchedule:
    """Sets every parameter group's rate before each optimizer step.

    ``on_validation(score)`` (higher is better) drives the ``plateau`` schedule: after
    ``train.plateau_patience`` validations without improvement the rate is multiplied by
    ``train.plateau_factor``.
    """

    def __init__(self, cfg: TrainConfig, total_steps: int):
        self.cfg = cfg
        self.total_steps = total_steps
        self.plateau = PlateauState()

    def lr(self, step: int) -> float:
        factor = lr_factor(step, warmup_steps=self.cfg.warmup_steps, total_steps=self.total_steps,
                           schedule=self.cfg.schedule)
        scale = self.plateau.scale if self.cfg.schedule == "plateau" else 1.0
        return self.cfg.lr * factor * scale

    def apply(self, optimizer, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def on_validation(self, score: float) -> bool:
        """Record a validation score; True when the rate was just reduced."""
        p = self.plateau
        if score > p.best:
            p.best, p.bad_validations = score, 0
            return False
        p.bad_validations += 1
        if self.cfg.schedule == "plateau" and p.bad_validations >= self.cfg.plateau_patience:
            p.scale *= self.cfg.plateau_factor
            p.bad_validations = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"total_steps": self.total_steps, "plateau": asdict(self.plateau)}

    def load_state_dict(self, state: dict) -> None:
        self.plateau = PlateauState(**state["plateau"])
