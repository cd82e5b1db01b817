"""The waveform FNN: Hann overlap-add at 50 % is exact, the network is level-independent and
local to its window."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from stemsplit.models import build_model
from stemsplit.models.waveform_fnn import frame, overlap_add


@pytest.mark.parametrize("length", [1, 31, 32, 1000, 4097])
def test_hann_overlap_add_gives_back_any_length(length):
    x = torch.randn(2, 3, length)
    windows, n = frame(x, 64)
    assert n == length and windows.shape[-1] == 64
    torch.testing.assert_close(overlap_add(windows * torch.hann_window(64, periodic=True), n), x)


def test_output_follows_the_input_level():
    """Windows are normalised by their RMS and rescaled after: twice as loud in, twice as loud out."""
    cfg = tiny_config("waveform_fnn")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(1, 2, 3000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(model(2 * x), 2 * model(x), rtol=1e-4, atol=1e-6)


def test_a_sample_reaches_only_the_windows_around_it():
    cfg = tiny_config("waveform_fnn")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    window = cfg.model.params.window
    x = torch.randn(1, 2, 4000) * 0.1
    y = x.clone()
    y[..., 2000] += 1.0
    with torch.no_grad():
        changed = torch.nonzero((model(x) - model(y)).abs().amax(dim=(0, 1, 2)) > 0).flatten()
    assert changed.min() >= 2000 - window and changed.max() <= 2000 + window
