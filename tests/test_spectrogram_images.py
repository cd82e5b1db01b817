"""Spectrogram strips of the listening report: one dB scale for all, x pixels proportional to time."""
import numpy as np
from PIL import Image

from stemsplit.evaluation.spectrogram_images import (
    DB_RANGE,
    HEIGHT,
    N_LEVELS,
    WIDTH,
    levels,
    spectrogram_db,
    write_spectrogram_png,
)

SR = 16000


def sine(freq, amp, seconds=4.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


def test_one_scale_in_dbfs_for_every_picture():
    loud, quiet = spectrogram_db(sine(1000, 1.0), SR), spectrogram_db(sine(1000, 0.1), SR)
    assert loud.shape == (HEIGHT, WIDTH)
    assert -3 < loud.max() <= 0.5  # a full-scale sine is about 0 dB, not normalised per image
    assert abs((loud.max() - quiet.max()) - 20) < 0.1  # 10x quieter is 20 dB lower on the same scale
    row = np.argmax(loud.mean(axis=1))
    low, high = [np.argmax(spectrogram_db(sine(f, 0.5), SR).mean(axis=1)) for f in (200, 5000)]
    assert low < row < high  # row 0 is the lowest band


def test_columns_follow_time_and_long_input_is_consistent():
    half = sine(1000, 0.5, seconds=2.0)
    audio = np.concatenate([np.zeros_like(half), half], axis=1)
    db = spectrogram_db(audio, SR)
    row = np.argmax(db.mean(axis=1))
    smear = 20  # half the 2048-point window, in columns of 5 ms, and some
    assert db[row, : WIDTH // 2 - smear].max() < -150 and db[row, WIDTH // 2 + smear: -smear].min() > -15
    # 60 s is computed in several blocks of frames: a steady tone gives the same value in every column
    steady = spectrogram_db(sine(1000, 0.5, seconds=60.0), SR)
    assert np.ptp(steady[row, 2:-2]) < 0.5  # (the first and last columns half-see the padding)


def test_stereo_is_averaged_and_tiny_input_works():
    stereo = np.concatenate([sine(1000, 0.5), sine(1000, 0.5)])
    np.testing.assert_allclose(spectrogram_db(stereo, SR), spectrogram_db(sine(1000, 0.5), SR), atol=1e-3)
    assert spectrogram_db(np.zeros((1, 10), np.float32), SR).shape == (HEIGHT, WIDTH)


def test_png_is_an_indexed_strip_with_low_frequencies_at_the_bottom(tmp_path):
    path = write_spectrogram_png(sine(100, 0.5), SR, tmp_path / "s.png")
    image = Image.open(path)
    assert image.mode == "P" and image.size == (WIDTH, HEIGHT)
    idx = np.asarray(image)
    assert idx.max() < N_LEVELS
    bright_row = np.argmax(idx.mean(axis=1))
    assert bright_row > HEIGHT * 0.6  # 100 Hz is in the lower part of the picture
    assert list(tmp_path.iterdir()) == [path]


def test_levels_clip_to_the_scale():
    db = np.array([[DB_RANGE[0] - 50, DB_RANGE[0], DB_RANGE[1], DB_RANGE[1] + 20]], np.float32)
    assert levels(db).tolist() == [[0, 0, N_LEVELS - 1, N_LEVELS - 1]]
