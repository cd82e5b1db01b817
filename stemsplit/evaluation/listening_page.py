"""What the listening report's page shows: its players, their sources and clips, and the numbers
beside them. ``listening`` builds a ``ListeningPage``; ``html_report`` renders it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from stemsplit.evaluation.reports import EvaluationReport


@dataclass
class Clip:
    """One playable source: the mixture, a reference stem or one estimate."""

    label: str
    audio: str  # URL relative to report.html
    image: str
    scores: dict[str, float] = field(default_factory=dict)  # metric -> dB (estimates only)


@dataclass
class SourceSet:
    """One choice of the player's source selector: the mixture, the reference stems or a method."""

    key: str  # "mix", "ref", "m0", "m1"...
    label: str
    kind: str  # "mixture" | "reference" | a MethodSpec kind
    clips: list[Clip]
    mean: float = math.nan  # mean over stems of the headline metric


@dataclass
class TrackPlayer:
    name: str
    duration: float  # seconds
    spread: float  # dB between the best and worst compared method on this track
    sources: list[SourceSet]
    notes: list[str] = field(default_factory=list)  # methods left out of this player, and why


@dataclass
class ListeningPage:
    report: EvaluationReport
    metric: str  # the headline metric: museval SDR when computed, else gsdr
    players: list[TrackPlayer]
    speed: dict[str, float]  # method -> median x real time of its separation while scoring
    headroom: dict[str, dict[str, float]]  # method -> metric -> share of the oracle headroom
    boxplot: str | None  # URL
    colour_scale: str
    codec: str
    bitrate: str
