"""Evaluation machinery behind ``stemsplit evaluate``.

- ``methods``: what is scored (checkpoints, shipped models, folders of estimates, oracles)
  and how one track's estimates are produced for each.
- ``store``: the per-(method key, track) score cache that lets an interrupted run resume.
- ``runner``: separates and scores tracks in parallel worker processes.
- ``reports``, ``boxplot``, ``table``: summary.csv/.md, scores.json, tracks.csv, museval
  JSON, sdr_boxplot.png and the terminal table.
"""
from __future__ import annotations

from stemsplit.errors import StemsplitError


class EvaluationError(StemsplitError, RuntimeError):
    """Evaluation input that cannot be used (stems mismatch, bad estimates folder...);
    the message is one line meant for people."""
