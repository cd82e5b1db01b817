"""Compressed audio for the listening report: AAC and Opus through ffmpeg, written atomically."""
import numpy as np
import pytest

from stemsplit.audio import encode
from stemsplit.audio.encode import check_encoder, encode_compressed, suffix_for
from stemsplit.audio.io import AudioError, audio_info, read_audio

SR = 8000


def tone(freq=440.0, seconds=2.0, sr=SR, channels=2):
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([0.4 * np.sin(2 * np.pi * freq * t) * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32)


def peak_hz(audio, sr):
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return np.argmax(spectrum) * sr / audio.shape[1]


@pytest.mark.parametrize("codec,suffix,rate", [("opus", ".webm", 48000), ("aac", ".m4a", SR)])
def test_encoded_file_decodes_to_the_same_sound(tmp_path, codec, suffix, rate):
    audio = tone()
    path = encode_compressed(audio, SR, tmp_path / f"a{suffix_for(codec)}", codec, "48k")
    assert path.suffix == suffix and path.is_file()
    info = audio_info(path)
    assert (info.sample_rate, info.channels) == (rate, 2)
    decoded, sr = read_audio(path)
    assert sr == rate and abs(decoded.shape[1] / sr - 2.0) < 0.05  # the length survives
    assert abs(peak_hz(decoded, sr) - 440) < 5  # the tone survives
    # the channel levels survive (a lossy codec keeps a 0.4 vs 0.28 sine to within a few %)
    rms = np.sqrt((decoded[:, sr // 4: -sr // 4] ** 2).mean(axis=1))
    np.testing.assert_allclose(rms, [0.4 / np.sqrt(2), 0.28 / np.sqrt(2)], rtol=0.08)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_modest_bitrate_gives_a_small_file(tmp_path):
    noise = np.random.default_rng(0).standard_normal((2, 10 * SR)).astype(np.float32) * 0.2
    path = encode_compressed(noise, SR, tmp_path / "n.webm", "opus", "32k")
    assert path.stat().st_size < 10 * 32_000 / 8 * 1.3  # about 32 kb/s, not the 512 kb/s of the PCM


def test_bad_settings_are_one_line_errors_and_write_nothing(tmp_path):
    with pytest.raises(AudioError, match="codec 'mp3' is not supported; choose one of aac, opus"):
        encode_compressed(tone(), SR, tmp_path / "a.mp3", "mp3")
    with pytest.raises(AudioError, match="bitrate '64000'"):
        check_encoder("opus", "64000")
    with pytest.raises(AudioError, match="expected \\(channels, time\\)"):
        encode_compressed(np.zeros((2, 3, 4), np.float32), SR, tmp_path / "a.webm")
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_failure_leaves_no_file(tmp_path):
    with pytest.raises(AudioError) as err:  # the AAC encoder has no 9-channel layout
        encode_compressed(np.zeros((9, SR), np.float32), SR, tmp_path / "a.m4a", "aac")
    assert "ffmpeg could not encode aac" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_ffmpeg_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(encode.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="apt-get install ffmpeg"):
        check_encoder("opus", "64k")
