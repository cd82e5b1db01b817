import numpy as np
import pytest

from stemsplit.audio.convert import (
    StreamingResampler,
    clip_gain,
    protect,
    resample,
    to_model_channels,
    to_output_channels,
)


@pytest.mark.parametrize("orig,new", [(8000, 44100), (96000, 44100), (48000, 44100), (44100, 48000),
                                      (44100, 44100)])
def test_streaming_resampler_equals_one_shot(orig, new):
    x = np.random.default_rng(0).standard_normal((2, 20011)).astype(np.float32)
    ref = resample(x, orig, new)
    r = StreamingResampler(orig, new)
    outs, pos, sizes = [], 0, [1, 700, 4096, 7, 9000, 0]
    for i in range(100):
        if pos >= x.shape[1]:
            break
        n = sizes[i % len(sizes)]
        outs.append(r.process(x[:, pos : pos + n]))
        pos += n
    outs.append(r.flush())
    y = np.concatenate(outs, axis=-1)
    assert y.dtype == np.float32 and y.shape == ref.shape == (2, round(20011 * new / orig))
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("orig,new", [(48000, 44100), (22050, 44100), (44100, 32000)])
def test_resampling_keeps_a_tone_and_its_timing(orig, new):
    """A 1 kHz sine comes out as the same sine on the new grid (no delay, no gain change),
    and a tone above the new Nyquist frequency is filtered out instead of aliasing."""
    t_in = np.arange(orig) / orig
    t_out = np.arange(new) / new
    tone = resample(np.sin(2 * np.pi * 1000 * t_in)[None].astype(np.float32), orig, new)[0]
    want = np.sin(2 * np.pi * 1000 * t_out)
    inner = slice(new // 10, -new // 10)  # away from the edges, where the filter sees padding
    assert np.abs(tone[inner] - want[inner]).max() < 1e-3
    if new < orig:
        high = resample(np.sin(2 * np.pi * 0.48 * orig * t_in)[None].astype(np.float32), orig, new)[0]
        assert np.abs(high[inner]).max() < 1e-3


def test_resample_keeps_leading_axes():
    x = np.random.default_rng(1).standard_normal((3, 2, 4410)).astype(np.float32)
    y = resample(x, 44100, 48000)
    assert y.shape == (3, 2, 4800)
    np.testing.assert_allclose(y[1, 0], resample(x[1, 0][None], 44100, 48000)[0], rtol=0, atol=1e-7)


def test_flush_without_input_and_identity_rates():
    assert StreamingResampler(48000, 44100).flush().shape[-1] == 0
    same = StreamingResampler(44100, 44100)
    x = np.ones((2, 10), np.float32)
    assert same.process(x) is x and same.flush().shape == (2, 0)


def test_channel_layouts():
    rng = np.random.default_rng(0)
    mono = rng.standard_normal((1, 10)).astype(np.float32)
    np.testing.assert_array_equal(to_model_channels(mono, 2), np.repeat(mono, 2, axis=0))  # mono is duplicated
    assert to_model_channels(mono, 1) is mono
    six = rng.standard_normal((6, 10)).astype(np.float32)
    np.testing.assert_array_equal(to_model_channels(six, 2), six[:2])  # a 5.1 file: the first two channels
    np.testing.assert_array_equal(to_model_channels(six, 1), six[:2].mean(0, keepdims=True))  # front L/R only
    stereo = six[:2]
    assert to_model_channels(stereo, 2) is stereo
    stems = rng.standard_normal((4, 2, 10)).astype(np.float32)
    np.testing.assert_array_equal(to_output_channels(stems, 1), stems.mean(-2, keepdims=True))  # mono in, mono out
    assert to_output_channels(stems, 2) is stems
    mono_stems = rng.standard_normal((4, 1, 10)).astype(np.float32)
    assert to_output_channels(mono_stems, 1) is mono_stems


def test_clipping_protection():
    x = np.array([[0.5, -2.0, 1.5]], dtype=np.float32)
    g = clip_gain(2.0, "rescale")
    assert g == pytest.approx(0.999 / 2.0)
    assert np.abs(protect(x, "rescale", g)).max() <= 1.0
    assert protect(x, "rescale", g).dtype == np.float32
    assert np.array_equal(protect(x, "clamp"), np.clip(x, -1, 1))
    assert np.array_equal(protect(x, "none"), x)
    assert clip_gain(0.5, "rescale") == 1.0
