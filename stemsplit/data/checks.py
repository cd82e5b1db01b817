"""Per-track checks run before a track enters the cache, collected into one report table.

A *problem* leaves the track out (missing stems, mismatched lengths or sample rates,
unreadable files, nothing audible at all). A *warning* is reported but the track is kept (a
silent stem, clipped samples, a mixture that is not the sum of its stems); ``strict`` turns
warnings into problems.

A mixture that differs from the sum of its stems is a warning, not a problem, because real
datasets hold such tracks on purpose: in MUSDB18's test set "PR - Oh No" sits at -7.3 dB
(the published mix has processing the stems lack), and leaving it out would make the test
split 49 tracks instead of the 50 every published result is computed on. Training excerpts
are sums of the stems; validation and evaluation feed the stored mixture to the model and
score the estimates against the stems.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

RESIDUAL_WARNING = "mixture is not the sum of its stems"


@dataclass
class CheckOptions:
    silence_db: float = -60.0  # a stem whose RMS is below this (dBFS) is silent
    max_residual_db: float = -20.0  # mixture vs sum of stems, relative to the mixture: above it, a warning
    clip_level: float = 0.999  # consecutive |samples| at or above this count as clipped
    strict: bool = False  # warnings leave the track out too


@dataclass
class TrackCheck:
    """One row of the report: a track, its split, and what was found."""

    name: str
    split: str = ""
    source: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    residual_db: float | None = None  # None: no mixture file, the sum of stems is used
    seconds: float = 0.0
    reused: bool = False  # unchanged since the last run: taken from the cache, not checked again

    @property
    def status(self) -> str:
        if self.problems:
            return "fail"
        if self.reused:
            return "cached"
        return "warn" if self.warnings else "ok"

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "; ".join(self.problems + self.warnings)

    @property
    def residual_warning(self) -> str | None:
        """The kept track's mixture-vs-stems warning, if it has one."""
        return next((w for w in self.warnings if w.startswith(RESIDUAL_WARNING)), None) if self.ok else None


def _db(power: float) -> float:
    return 10.0 * math.log10(max(power, 1e-20))


def check_audio(check: TrackCheck, stems: dict[str, np.ndarray], mixture: np.ndarray | None,
                options: CheckOptions) -> None:
    """Add findings about decoded audio to ``check``. Arrays are (channels, time) at one rate."""
    rms_db = {s: _db(float(np.mean(np.square(a, dtype=np.float64)))) for s, a in stems.items()}
    silent = [s for s, level in rms_db.items() if level < options.silence_db]
    if len(silent) == len(stems):
        check.problems.append("every stem is silent")
    elif silent:
        check.warnings.append(f"silent: {', '.join(silent)}")
    total = np.sum(list(stems.values()), axis=0, dtype=np.float32)
    if mixture is not None:
        mix_power = float(np.sum(np.square(mixture, dtype=np.float64)))
        err_power = float(np.sum(np.square(mixture - total, dtype=np.float64)))
        check.residual_db = _db(err_power) - _db(mix_power) if mix_power > 0 else 0.0
        if check.residual_db > options.max_residual_db:
            check.warnings.append(f"{RESIDUAL_WARNING} (residual {check.residual_db:.1f} dB, "
                                  f"limit {options.max_residual_db:.0f} dB)")
    clipped = []
    for part, audio in [*stems.items(), ("mixture" if mixture is not None else "sum of stems",
                                          mixture if mixture is not None else total)]:
        hot = np.abs(audio) >= options.clip_level
        # clipping flattens the wave: count samples in runs of two or more at full scale
        count = int(np.count_nonzero(hot[:, 1:] & hot[:, :-1]))
        if count:
            clipped.append(f"{part} {count}")
    if clipped:
        check.warnings.append(f"clipped samples: {', '.join(clipped)}")
    if options.strict and check.warnings:
        check.problems.extend(f"strict: {w}" for w in check.warnings)
