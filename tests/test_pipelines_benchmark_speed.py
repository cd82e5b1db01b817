"""`stemsplit separate --benchmark`: this machine's speed for a model, on a generated song."""
import tempfile
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import write_tiny_checkpoint
from typer.testing import CliRunner

from stemsplit import pretrained
from stemsplit.cli import app
from stemsplit.pipelines import benchmark_speed
from stemsplit.pipelines.separator import Separator

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.ckpt", "lstm")


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary files of the benchmark go here, so a test can see that none are left."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_the_song_is_stereo_in_range_and_the_same_every_time():
    song = benchmark_speed.benchmark_song(2.0)
    assert song.shape == (2, 88200) and song.dtype == np.float32
    assert 0.1 < np.abs(song).max() < 1.0 and np.array_equal(song, benchmark_speed.benchmark_song(2.0))
    assert not np.array_equal(song[0], song[1])


def test_the_timed_pass_separates_the_whole_song_into_every_stem(ckpt, own_tmp, monkeypatch):
    seen = {}
    original = Separator.write_stems

    def spy(self, path, targets, chosen, *args, **kwargs):
        seen["frames"] = sf.info(str(path)).frames
        time.sleep(0.3)  # inside the timed pass: it must show in separate_seconds
        result = original(self, path, targets, chosen, *args, **kwargs)
        seen["written"] = {name: sf.info(str(p)).frames for name, p in result.outputs.items()}
        return result

    monkeypatch.setattr(Separator, "write_stems", spy)
    result = benchmark_speed.measure_speed(str(ckpt), threads=1, seconds=3.0)
    assert seen["frames"] == 3 * 44100
    assert seen["written"] == {stem: 3 * 44100 for stem in ("vocals", "drums", "bass", "other")}
    assert result.model == "tiny" and result.audio_seconds == 3.0
    assert result.separate_seconds >= 0.3 and result.load_seconds < result.separate_seconds
    assert result.x_realtime == pytest.approx(3.0 / result.separate_seconds)
    assert result.listed_x_realtime is None  # not a shipped model: no build-machine figure
    assert not any(own_tmp.iterdir())  # the song and its stems are gone


def test_cli_prints_the_speed_of_a_checkpoint(ckpt, own_tmp, monkeypatch):
    monkeypatch.setattr(benchmark_speed, "BENCHMARK_SECONDS", 2.0)
    res = runner.invoke(app, ["separate", "--benchmark", "--model", str(ckpt), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    assert "tiny (torch) on this machine:" in res.output and "x real time" in res.output
    assert "2 s of stereo audio" in res.output and "build machine" not in res.output
    assert not any(own_tmp.iterdir())


def test_cli_names_the_build_machine_figure_of_the_default_model(own_tmp, monkeypatch):
    monkeypatch.setattr(benchmark_speed, "BENCHMARK_SECONDS", 2.0)
    res = runner.invoke(app, ["separate", "--benchmark", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    name = pretrained.default_model_name()
    listed = pretrained.registry()["models"][name]["speed_x_realtime"]
    assert f"{name} (onnx) on this machine:" in res.output
    assert f"--list-models gives {listed:.0f}x for it, measured on the build machine" in res.output


@pytest.mark.parametrize("args,match", [
    (["song.wav"], "give no input files"),
    (["--jobs", "0"], "--jobs"),
    (["--model", "no-such-model"], "no-such-model"),
])
def test_cli_bad_benchmark_requests_are_one_line_errors(args, match, own_tmp):
    res = runner.invoke(app, ["separate", "--benchmark", *args])
    assert res.exit_code == 2, res.output
    assert match in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1
