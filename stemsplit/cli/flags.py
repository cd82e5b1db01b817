"""Range checks for numeric flags, run before any work (and before torch loads).

Each failure is a ``ConfigError`` whose one line names the flag, the value and the range, so
``--seconds inf``, ``--limit -1`` or ``--valid-fraction nan`` never reach the code that would
overflow, loop or silently read them as "the default". The separation-engine flags have their
own checks in ``stemsplit.settings.EngineSettings.checked``.
"""
from __future__ import annotations

import math

from stemsplit.errors import ConfigError


def check_number(flag: str, value: float | int | None, low: float | None = None, high: float | None = None,
                 *, low_open: bool = False, high_open: bool = False, hint: str = "") -> None:
    """``value`` must be finite and within ``[low, high]`` (``low_open``/``high_open``: excluded);
    None (a flag left out) passes."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag} {value}: must be a finite number" + (f"; {hint}" if hint else ""))
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ConfigError(f"{flag} {value:g}: must be {_range(low, high, low_open, high_open)}"
                          + (f"; {hint}" if hint else ""))


def _range(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} {value!r}: choose one of {', '.join(choices)}")
