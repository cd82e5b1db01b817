"""The engine's spare arrays: handed out again while their shape holds, never more than ``keep``."""
import numpy as np

from stemsplit.separation.spares import Spares


def test_a_given_array_comes_back_for_the_same_shape_only():
    spares = Spares(keep=2)
    a = spares.take("masks", (2, 3), np.float32)
    spares.give("masks", a)
    assert spares.take("masks", (2, 3), np.float32) is a
    spares.give("masks", a)
    assert spares.take("masks", (2, 3), np.float64) is not a  # another dtype: a new array
    spares.give("masks", a)
    assert spares.take("spectrum", (2, 3), np.float32) is not a  # another name: a new array


def test_spares_of_an_old_shape_are_dropped_and_at_most_keep_are_kept():
    spares = Spares(keep=2)
    full = [np.empty((4, 5), np.float32) for _ in range(3)]
    for a in full:
        spares.give("m", a)  # the third is one too many: dropped
    assert spares.take("m", (4, 5), np.float32) is full[1] and spares.take("m", (4, 5), np.float32) is full[0]
    fresh = spares.take("m", (4, 5), np.float32)
    assert all(fresh is not a for a in full)
    for a in full[:2]:
        spares.give("m", a)
    short = np.empty((4, 2), np.float32)
    spares.give("m", short)  # a song's last, shorter segment: the full-size spares go
    assert spares.take("m", (4, 2), np.float32) is short
    again = spares.take("m", (4, 5), np.float32)
    assert all(again is not a for a in full)
    spares.give("m", None)  # a job without that array gives nothing
    assert spares.take("m", (4, 2), np.float32) is not short
