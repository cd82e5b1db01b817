"""Linear-fade segmenting (stemsplit/separation/linear_fade.py) against MSST's demix arithmetic,
written out in torch in tests/test_formats_roformer.py, with a toy network whose output depends on
each chunk's position and content (so any other cutting or blending shows)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_formats_roformer import msst_demix

from stemsplit.separation import linear_fade


def toy(chunk: torch.Tensor) -> torch.Tensor:
    """(1, C, N) -> (1, 2, C, N): a ramp over the chunk times the input, plus the chunk's mean."""
    ramp = torch.linspace(1, 2, chunk.shape[-1])
    return torch.stack([chunk * ramp, -chunk + chunk.mean(-1, keepdim=True)], dim=1)


@pytest.mark.parametrize(("segment", "num_overlap"), [(1000, 2), (1000, 4), (999, 3), (1000, 1), (40, 2)])
@pytest.mark.parametrize("length", [1, 50, 700, 1500, 2001, 2999, 4123])
def test_streamed_segments_blend_as_msst_demix(segment, num_overlap, length):
    torch.manual_seed(length)
    mix = torch.randn(2, length)
    want = msst_demix(toy, mix, segment, num_overlap).numpy()
    calls = []

    def start(chunk):
        calls.append(chunk.shape)
        return toy(torch.from_numpy(chunk)[None]).numpy()[0]

    stride = segment // num_overlap
    for blocks in ([mix.numpy()], [mix.numpy()[:, i:i + 37] for i in range(0, length, 37)]):
        calls.clear()
        got = np.concatenate(list(linear_fade.one_pass(blocks, segment=segment, stride=stride, channels=2,
                                                       start=start, finish=lambda out: out)), axis=-1)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert len(calls) == linear_fade.count_segments(length, segment, stride)
        assert all(shape == (2, segment) for shape in calls)


def test_fade_window_rises_and_falls_over_a_tenth():
    w = linear_fade.fade_window(100, first=False, last=False)
    assert w[0] == 0 and w[9] == 1 and w[50] == 1 and w[-1] == 0 and np.all(np.diff(w[:10]) > 0)
    assert linear_fade.fade_window(100, first=True, last=False)[0] == 1
    assert linear_fade.fade_window(100, first=False, last=True)[-1] == 1
    assert np.all(linear_fade.fade_window(9, first=False, last=False) == 1)  # no fade under 10 samples
