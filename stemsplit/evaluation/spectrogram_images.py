"""Spectrogram pictures for the listening report: PNG strips whose x axis is time, pixel for pixel.

Every picture uses one colour scale, ``DB_RANGE`` in dB relative to full scale (a full-scale
sine is 0 dB), so that a mixture, its stems and every estimate can be compared by eye: a
quieter estimate looks darker. The images carry no axes or margins, so the page maps a click
at x pixels to ``x / width * duration`` seconds. Frequency is on a log axis from ``F_MIN`` to
Nyquist (low at the bottom), where music's structure is.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from stemsplit.atomic import write_bytes_atomic

DB_RANGE = (-100.0, -10.0)  # the colour scale of every picture, dBFS per STFT bin
CMAP = "magma"
N_LEVELS = 64  # colours in the palette: 1.4 dB apart on the scale
N_FFT = 2048
F_MIN = 30.0
WIDTH, HEIGHT = 800, 112


def _band_starts(n_bins: int, sample_rate: int, height: int) -> np.ndarray:
    """The first STFT bin of each of ``height`` log-spaced bands, lowest band first."""
    nyquist = sample_rate / 2
    f_min = min(F_MIN, nyquist / 4)
    edges = np.geomspace(f_min, nyquist, height + 1)[:-1]
    freqs = np.linspace(0, nyquist, n_bins)
    return np.minimum(np.searchsorted(freqs, edges), n_bins - 1)


def spectrogram_db(audio: np.ndarray, sample_rate: int, width: int = WIDTH, height: int = HEIGHT,
                   n_fft: int = N_FFT) -> np.ndarray:
    """(height, width) float32 dBFS, row 0 the lowest band, of audio (channels, time).

    Channels are averaged; each column is the mean power of the STFT frames that fall in it,
    computed in blocks of frames so a long song never holds its whole STFT.
    """
    mono = np.asarray(audio, np.float32).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    # enough frames for every column: short excerpts get a finer hop
    hop = int(max(1, min(n_fft // 4, mono.size // width)))
    padded = np.pad(mono, (n_fft // 2, n_fft // 2 + hop))
    n_frames = max(1, (padded.size - n_fft) // hop + 1)
    window = np.hanning(n_fft).astype(np.float32)
    # a full-scale sine puts sum(window)/2 in its bin: that power is 0 dB
    scale = 1.0 / (window.sum() / 2) ** 2
    # frame k is centred on sample k * hop: its column is where that sample is on the time axis
    columns = np.minimum((np.arange(n_frames) * hop * width) // max(mono.size, 1), width - 1)
    power = np.zeros((n_fft // 2 + 1, width), np.float64)
    counts = np.bincount(columns, minlength=width).astype(np.float64)
    frames_view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    for start in range(0, n_frames, 1024):
        block = frames_view[start:start + 1024] * window
        spec = np.abs(np.fft.rfft(block, axis=1)) ** 2  # (frames, bins)
        np.add.at(power.T, columns[start:start + block.shape[0]], spec)
    power /= np.maximum(counts, 1)
    # the loudest bin of each band: a tone keeps its level however wide its band is (a band
    # narrower than one bin takes the bin above its lower edge)
    bands = np.maximum.reduceat(power, _band_starts(n_fft // 2 + 1, sample_rate, height), axis=0)
    return (10 * np.log10(bands * scale + 1e-20)).astype(np.float32)


def levels(db: np.ndarray, db_range: tuple[float, float] = DB_RANGE) -> np.ndarray:
    """(height, width) dB -> (height, width) uint8 colour indices on the shared scale, flipped so
    that low frequencies are at the bottom of the picture."""
    low, high = db_range
    level = np.clip((db - low) / (high - low), 0.0, 1.0)[::-1]
    return np.round(level * (N_LEVELS - 1)).astype(np.uint8)


def _png_bytes(indices: np.ndarray) -> bytes:
    """An indexed PNG whose palette is the colour map: a quarter of the size of RGB, same look."""
    from matplotlib import colormaps
    from PIL import Image

    palette = (colormaps[CMAP].resampled(N_LEVELS)(np.arange(N_LEVELS))[:, :3] * 255).round().astype(np.uint8)
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(indices).tobytes())
    image.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    image.save(buf, format="png", optimize=True)
    return buf.getvalue()


def write_spectrogram_png(audio: np.ndarray, sample_rate: int, path: Path) -> Path:
    """The picture of one source, written atomically."""
    write_bytes_atomic(path, _png_bytes(levels(spectrogram_db(audio, sample_rate))))
    return Path(path)


def write_colour_scale_png(path: Path, db_range: tuple[float, float] = DB_RANGE) -> Path:
    """A small labelled bar of the shared colour scale, for the page's legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig, ax = plt.subplots(figsize=(4.0, 0.75))
    bar = fig.colorbar(ScalarMappable(norm=Normalize(*db_range), cmap=CMAP), cax=ax, orientation="horizontal")
    bar.set_label("dB (full scale) per frequency bin", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.04, right=0.96, top=0.95, bottom=0.62)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)
