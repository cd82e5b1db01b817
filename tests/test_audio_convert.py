import numpy as np
import pytest
import torch

from stemsplit.audio.convert import (StreamingResampler, clip_gain, protect, resample,
                                     to_model_channels, to_output_channels)


@pytest.mark.parametrize("orig,new", [(8000, 44100), (96000, 44100), (48000, 44100), (44100, 48000),
                                      (44100, 44100)])
def test_streaming_resampler_equals_one_shot(orig, new):
    torch.manual_seed(0)
    x = torch.randn(2, 20011)
    ref = resample(x, orig, new)
    r = StreamingResampler(orig, new)
    outs, pos, sizes = [], 0, [1, 700, 4096, 7, 9000]
    for i in range(100):
        if pos >= x.shape[1]:
            break
        n = sizes[i % len(sizes)]
        outs.append(r.process(x[:, pos : pos + n]))
        pos += n
    outs.append(r.flush())
    y = torch.cat(outs, dim=-1)
    assert y.shape == ref.shape
    assert torch.allclose(y, ref, atol=1e-6)


def test_channel_layouts():
    torch.manual_seed(0)
    mono = torch.randn(1, 10)
    assert torch.equal(to_model_channels(mono, 2), mono.expand(2, -1))  # mono is duplicated
    assert torch.equal(to_model_channels(mono, 1), mono)
    six = torch.randn(6, 10)
    assert torch.equal(to_model_channels(six, 2), six[:2])  # a 5.1 file: the first two channels
    assert torch.equal(to_model_channels(six, 1), six[:2].mean(0, keepdim=True))  # front L/R only
    stereo = six[:2]
    assert torch.equal(to_model_channels(stereo, 2), stereo)
    stems = torch.randn(4, 2, 10)
    assert torch.equal(to_output_channels(stems, 1), stems.mean(-2, keepdim=True))  # mono in, mono out
    assert torch.equal(to_output_channels(stems, 2), stems)
    mono_stems = torch.randn(4, 1, 10)
    assert torch.equal(to_output_channels(mono_stems, 1), mono_stems)


def test_clipping_protection():
    x = np.array([[0.5, -2.0, 1.5]], dtype=np.float32)
    g = clip_gain(2.0, "rescale")
    assert g == pytest.approx(0.999 / 2.0)
    assert np.abs(protect(x, "rescale", g)).max() <= 1.0
    assert np.array_equal(protect(x, "clamp"), np.clip(x, -1, 1))
    assert np.array_equal(protect(x, "none"), x)
    assert clip_gain(0.5, "rescale") == 1.0
