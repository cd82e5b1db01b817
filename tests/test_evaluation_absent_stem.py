"""Phantom stems: the energy a model puts into a stem that was removed from the music."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import write_tiny_checkpoint
from test_training_corpus import make_corpus

from stemsplit.evaluation.absent_stem import absent_stem_energy, energy_ratio_db


def test_energy_ratio_known_values():
    x = np.ones((2, 100))
    assert energy_ratio_db(x, x) == pytest.approx(0.0)
    assert energy_ratio_db(0.1 * x, x) == pytest.approx(-20.0)
    assert energy_ratio_db(0 * x, x) == -math.inf
    assert math.isnan(energy_ratio_db(x, 0 * x))


def test_an_untrained_model_puts_energy_into_the_missing_stem(tmp_path):
    """Random weights give masks near 0.5 everywhere: the missing vocals hold about a quarter of the
    remix's energy (-6 dB), far above silence, and every valid track is scored."""
    corpus = make_corpus(tmp_path / "ds", n_train=1, n_valid=2)
    ckpt = write_tiny_checkpoint(tmp_path / "m.ckpt", "lstm")
    score = absent_stem_energy(str(ckpt), corpus, "vocals")
    assert len(score.per_track) == 2
    assert -12.0 < score.median_db < 0.0
