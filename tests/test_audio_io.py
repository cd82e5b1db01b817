import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_mix

from stemsplit.audio.io import AudioError, AudioWriter, audio_info, iter_blocks, read_audio, rewrite_audio, write_audio


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"),
                                         ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_soundfile_formats_read_back(tmp_path, ext, subtype):
    x = tone_mix(1.0)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x.T, 44100, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == 44100 and y.shape[0] == 2 and y.dtype == np.float32
    assert abs(y.shape[1] - x.shape[1]) < 3000  # lossy codecs pad a little


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_ffmpeg_formats_read_back(tmp_path):
    src = tmp_path / "a.wav"
    write_audio(src, tone_mix(1.0), 44100)
    m4a = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), str(m4a)], check=True)
    info = audio_info(m4a)
    assert info.backend == "ffmpeg" and info.channels == 2 and info.sample_rate == 44100
    y, _ = read_audio(m4a)
    assert y.shape[0] == 2 and abs(y.shape[1] - 44100) < 3000


def test_blocks_stream_the_whole_file(tmp_path):
    x = tone_mix(1.0)
    write_audio(tmp_path / "a.wav", x, 44100)
    blocks = list(iter_blocks(tmp_path / "a.wav", 10000))
    assert all(b.shape[1] <= 10000 for b in blocks)
    assert np.allclose(np.concatenate(blocks, axis=1), x)


@pytest.mark.parametrize("content,match", [
    (None, "file not found"),
    (b"", "empty"),
    (b"this is not audio" * 50, "not a readable audio file"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=match) as info:
        read_audio(path)
    assert "\n" not in str(info.value)


def test_truncated_file_is_reported_or_read_partially(tmp_path):
    path = tmp_path / "t.flac"
    write_audio(path, tone_mix(2.0), 44100, "PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[:200])
    with pytest.raises(AudioError):
        read_audio(path)


def test_nan_samples_are_refused(tmp_path):
    x = tone_mix(0.5)
    x[0, 100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x.T, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        read_audio(path)


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "out" / "a.wav"
    with pytest.raises(RuntimeError):
        with AudioWriter(path, 44100, 2) as w:
            w.write(tone_mix(0.1))
            raise RuntimeError("killed half way")
    assert not path.exists()
    assert list((tmp_path / "out").iterdir()) == []
    with AudioWriter(path, 44100, 2, "PCM_16") as w:
        w.write(tone_mix(0.1))
    assert path.exists() and sf.info(path).subtype == "PCM_16"
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.stat().st_mode == plain.stat().st_mode  # readable like any file, not mkstemp's 0600


def test_unwritable_folder_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AudioError, match="cannot write output here"):
        AudioWriter(blocker / "a.wav", 44100, 2)


def test_rewrite_changes_subtype_with_a_transform(tmp_path):
    write_audio(tmp_path / "f.wav", tone_mix(0.2) * 4, 44100)
    rewrite_audio(tmp_path / "f.wav", tmp_path / "i.flac", "PCM_24", lambda b: np.clip(b, -1, 1))
    y, _ = read_audio(tmp_path / "i.flac")
    assert np.abs(y).max() <= 1.0 and sf.info(tmp_path / "i.flac").subtype == "PCM_24"


def test_a_truncated_wav_is_an_error_naming_the_file_and_both_lengths(tmp_path):
    import struct

    path = write_audio(tmp_path / "t.wav", tone_mix(2.0), 44100, "PCM_16")
    whole = path.read_bytes()
    assert audio_info(path).frames == 88200
    path.write_bytes(whole[: len(whole) // 2])  # the header still says 2 s
    for call in (audio_info, read_audio):
        with pytest.raises(AudioError, match=r"t\.wav: truncated: its header promises 2\.00 s of audio but the "
                                             r"file holds 1\.00 s") as info:
            call(path)
        assert "\n" not in str(info.value)
    # a streaming writer's "length unknown" header is not a truncation
    data_at = whole.index(b"data")
    stream = whole[:data_at + 4] + struct.pack("<I", 0xFFFFFFFF) + whole[data_at + 8: len(whole) // 2]
    path.write_bytes(stream)
    assert audio_info(path).frames > 0


def test_a_failed_or_full_write_removes_its_temporary_file(tmp_path, monkeypatch):
    import errno

    from stemsplit.audio.io import DiskFullError

    out = tmp_path / "out"
    writer = AudioWriter(out / "a.wav", 44100, 2, "PCM_16")
    writer.write(tone_mix(0.1))

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    with pytest.raises(DiskFullError, match=r"a\.wav: disk full while writing \(No space left on device\)"):
        writer.write(tone_mix(0.1))
    assert list(out.iterdir()) == []  # removed at once, before anyone calls abort()
    monkeypatch.undo()
    (out / "b.wav").mkdir()  # the final name is taken by a folder: the rename fails
    with pytest.raises(AudioError, match=r"b\.wav: write failed"):
        write_audio(out / "b.wav", tone_mix(0.1), 44100)
    assert [p.name for p in out.iterdir()] == ["b.wav"]
