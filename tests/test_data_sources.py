"""Bringing a decoded track to the cache's rate and layout: one resampler for data and separation."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tone_mix

from stemsplit.audio.convert import StreamingResampler, resample, to_model_channels
from stemsplit.audio.io import iter_blocks, read_audio, write_audio
from stemsplit.data.cache import DataError
from stemsplit.data.sources import LoadedTrack, conform


@pytest.mark.parametrize("orig", [48000, 22050, 8000])
def test_prepared_samples_equal_what_separate_feeds_the_model(tmp_path, orig):
    """The same file, prepared (conform) and streamed the way ``separate`` reads it (blocks of
    one second through StreamingResampler), reaches 44.1 kHz with the same samples."""
    path = write_audio(tmp_path / "song.wav", tone_mix(1.7, sr=orig), orig)
    audio, sr = read_audio(path)
    prepared = conform(LoadedTrack({"vocals": audio}, audio, sr), 44100, 2, "song.wav")
    assert prepared.sample_rate == 44100
    np.testing.assert_array_equal(prepared.stems["vocals"], prepared.mixture)
    np.testing.assert_array_equal(prepared.mixture, resample(audio, orig, 44100))

    up = StreamingResampler(orig, 44100)
    streamed = [up.process(to_model_channels(b, 2)) for b in iter_blocks(path, orig)]
    streamed = np.concatenate([*streamed, up.flush()], axis=-1)
    assert streamed.shape == prepared.mixture.shape == (2, round(audio.shape[-1] * 44100 / orig))
    np.testing.assert_allclose(streamed, prepared.mixture, rtol=0, atol=1e-6)


def test_channels_are_conformed_and_same_rate_is_untouched():
    rng = np.random.default_rng(0)
    mono = rng.standard_normal((1, 500)).astype(np.float32)
    stereo = rng.standard_normal((2, 500)).astype(np.float32)
    out = conform(LoadedTrack({"bass": mono, "drums": stereo}, None, 44100), 44100, 2, "t")
    np.testing.assert_array_equal(out.stems["bass"], np.repeat(mono, 2, axis=0))
    np.testing.assert_array_equal(out.stems["drums"], stereo)
    assert out.mixture is None
    down = conform(LoadedTrack({"drums": stereo}, None, 44100), 44100, 1, "t")
    np.testing.assert_allclose(down.stems["drums"], stereo.mean(0, keepdims=True), rtol=1e-6)
    with pytest.raises(DataError, match="t: has 3 channels"):
        conform(LoadedTrack({"drums": np.zeros((3, 10), np.float32)}, None, 44100), 44100, 2, "t")
