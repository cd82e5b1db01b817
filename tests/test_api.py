"""The Python API (stemsplit.Separator): arrays and files, both runtimes, errors, threads."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_mix, write_tiny_checkpoint
from typer.testing import CliRunner

import stemsplit
from stemsplit.audio.io import write_audio
from stemsplit.cli import app

STEMS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", "lstm")


@pytest.fixture(scope="module")
def sep(ckpt) -> stemsplit.Separator:
    return stemsplit.Separator(ckpt, segment=0.5, threads=1)


def test_import_stemsplit_stays_light():
    code = ("import sys, stemsplit; light = sorted(m for m in sys.modules if m.startswith('stemsplit')); "
            "assert light == ['stemsplit', 'stemsplit.version'], light; assert 'numpy' not in sys.modules; "
            "stemsplit.Separator; assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_what_a_separator_knows(sep):
    assert sep.stems == STEMS and sep.sample_rate == 44100 and sep.runtime == "torch"
    assert sep.model_name == "tiny" and "tiny" in repr(sep)


@pytest.mark.parametrize("rate", [44100, 48000, 22050])
@pytest.mark.parametrize("channels", [1, 2])
def test_arrays_come_back_at_their_rate_length_and_channels(sep, rate, channels):
    audio = tone_mix(1.3, sr=rate, channels=channels)
    stems = sep.separate(audio, rate)
    assert list(stems) == STEMS
    for y in stems.values():
        assert y.shape == audio.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert max(np.abs(y).max() for y in stems.values()) > 1e-3  # the stems carry the sound


def test_a_1d_array_is_one_channel_and_the_same_as_its_2d_form(sep):
    audio = tone_mix(1.0, channels=1)
    flat, column = sep.separate(audio[0], 44100), sep.separate(audio, 44100)
    for stem in STEMS:
        assert flat[stem].shape == (1, audio.shape[1])
        np.testing.assert_array_equal(flat[stem], column[stem])
    assert all(v.shape == (1, 0) for v in sep.separate(np.zeros(0, np.float32), 44100).values())


def test_an_array_and_its_file_give_the_same_stems(sep, tmp_path):
    """separate() and separate_file() take one path: the float32 files equal the arrays."""
    audio = tone_mix(1.7, sr=48000)
    song = write_audio(tmp_path / "song.wav", audio, 48000, "FLOAT")
    arrays = sep.separate(audio, 48000)
    files = sep.separate_file(song, tmp_path / "out", bits=32, clip="none")
    assert files == {s: tmp_path / "out" / "tiny" / "song" / f"{s}.wav" for s in STEMS}
    for stem, path in files.items():
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == 48000
        np.testing.assert_allclose(data.T, arrays[stem], rtol=0, atol=1e-6)


def test_separate_file_writes_what_the_cli_writes(ckpt, sep, tmp_path):
    song = write_audio(tmp_path / "in" / "song.wav", tone_mix(1.5), 44100)
    flags = ["--stems", "vocals", "--residual", "--format", "flac", "--bits", "24",
             "--filename", "{track}-{stem}.{ext}"]
    res = CliRunner().invoke(app, ["separate", str(song), "--model", str(ckpt), "--segment", "0.5", "--jobs", "1",
                                   "-o", str(tmp_path / "cli"), *flags])
    assert res.exit_code == 0, res.output
    outputs = sep.separate_file(song, tmp_path / "api", stems=["vocals"], residual=True, fmt="flac", bits=24,
                                filename="{track}-{stem}.{ext}")
    assert sorted(outputs) == ["no_vocals", "vocals"]
    for name, path in outputs.items():
        assert path == tmp_path / "api" / f"song-{name}.flac"
        assert path.read_bytes() == (tmp_path / "cli" / path.name).read_bytes(), name


def test_onnx_runtime_gives_the_torch_stems(ckpt, sep, tmp_path):
    from stemsplit.pipelines.export import export_model

    onnx = tmp_path / "tiny.onnx"
    export_model(str(ckpt), onnx)
    on_onnx = stemsplit.Separator(onnx, segment=0.5, threads=1)  # auto: an .onnx file runs on ONNX Runtime
    assert on_onnx.runtime == "onnx" and on_onnx.stems == sep.stems and on_onnx.model_name == "tiny"
    audio = tone_mix(1.2, sr=32000)
    a, b = on_onnx.separate(audio, 32000), sep.separate(audio, 32000)
    for stem in STEMS:
        np.testing.assert_allclose(a[stem], b[stem], rtol=0, atol=1e-4)


def test_the_default_model_runs_without_arguments():
    sep = stemsplit.Separator()
    assert sep.runtime == "onnx"  # the shipped models have an ONNX form: auto picks ONNX Runtime
    stems = sep.separate(tone_mix(2.0), 44100)
    assert set(stems) == set(sep.stems) and all(v.shape == (2, 88200) for v in stems.values())


def test_threads_share_one_separator(sep):
    audio = [tone_mix(1.0, seed=i) for i in range(4)]
    alone = [sep.separate(a, 44100) for a in audio]
    together: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, sep.separate(audio[i], 44100)))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for stem in STEMS:
            np.testing.assert_array_equal(together[i][stem], alone[i][stem])


@pytest.mark.parametrize("kwargs,match", [
    ({"runtime": "tensorflow"}, "--runtime 'tensorflow': choose one of auto, torch, onnx"),
    ({"runtime": "onnx", "device": "cuda"}, "--runtime onnx runs on the CPU"),
    ({"segment": 0}, "--segment 0: must be > 0"),
    ({"segment": "long"}, "--segment 'long': expected a number"),
    ({"overlap": 1.5}, "--overlap 1.5: must be a fraction"),
    ({"shifts": 2.5}, "--shifts 2.5: expected a whole number"),
    ({"wiener_iterations": -1}, "--wiener-iterations -1: must be between"),
    ({"device": "tpu"}, "--device 'tpu': not a device"),
    ({"threads": 0}, "--jobs 0: must be between 1 and"),
])
def test_bad_arguments_are_one_line_stemsplit_errors(ckpt, kwargs, match):
    with pytest.raises(stemsplit.StemsplitError, match=match.replace("(", r"\(").replace("[", r"\[")) as err:
        stemsplit.Separator(ckpt, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_models_are_one_line_stemsplit_errors(ckpt, tmp_path):
    cases = [(lambda: stemsplit.Separator("no-such-model"), "not a shipped model"),
             (lambda: stemsplit.Separator(ckpt, runtime="onnx"), "has no ONNX form"),
             (lambda: stemsplit.Separator(tmp_path / "gone.onnx"), "model file not found")]
    for make, match in cases:
        with pytest.raises(stemsplit.StemsplitError, match=match) as err:
            make()
        assert "\n" not in str(err.value)


def test_bad_calls_are_one_line_stemsplit_errors(sep, tmp_path):
    good = tone_mix(0.5)
    calls = [(lambda: sep.separate(np.zeros((2, 2, 10)), 44100), "expected shape (channels, samples)"),
             (lambda: sep.separate(good.T, 44100), "looks like (samples, channels); pass audio.T"),
             (lambda: sep.separate(np.full((2, 100), np.nan), 44100), "NaN or infinite"),
             (lambda: sep.separate(good.astype(np.complex64), 44100), "expected real float samples"),
             (lambda: sep.separate(good, 0), "sample_rate 0: expected a positive whole number"),
             (lambda: sep.separate_file(tmp_path / "missing.wav", tmp_path), "missing.wav: file not found"),
             (lambda: sep.separate_file(tmp_path / "x.wav", tmp_path, stems=["piano"]), "'piano' is not a stem"),
             (lambda: sep.separate_file(tmp_path / "x.wav", tmp_path, fmt="flac", bits=32), "flac/32-bit"),
             (lambda: sep.separate_file(tmp_path / "x.wav", tmp_path, clip="soft"), "--clip 'soft'"),
             (lambda: sep.separate_file(tmp_path / "x.wav", tmp_path, filename="{track}.wav"), "must contain {stem}")]
    for call, match in calls:
        with pytest.raises(stemsplit.StemsplitError) as err:
            call()
        assert match in str(err.value) and "\n" not in str(err.value), (match, err.value)
