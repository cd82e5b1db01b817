"""`stemsplit stream`: aligned stems of the input's length, the same whatever the block size and
whether the samples come from a file or a pipe, close to `separate`'s, finished cleanly on
SIGTERM/Ctrl-C, one-line errors, --stats-json, and no torch for an ONNX model."""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_proc import TIMEOUT, child_env, command, wait_for
from conftest import tone_mix, write_tiny_checkpoint
from test_lean_imports import stemsplit as lean_stemsplit
from test_separation_streaming import snr_db
from typer.testing import CliRunner

from stemsplit.atomic import is_temp_name
from stemsplit.audio.io import write_audio
from stemsplit.cli import app
from stemsplit.onnx_export import export_onnx
from stemsplit.resolver import load_torch

STEMS = ("vocals", "drums", "bass", "other")
SR = 44100
runner = CliRunner()


def song_signal(seconds: float, seed: int = 4) -> np.ndarray:
    """Tones plus noise bursts that switch on and off (the recurrent state has something to follow)."""
    x = tone_mix(seconds, seed=seed)
    gate = (np.sin(2 * np.pi * 0.7 * np.arange(x.shape[1]) / SR) > 0).astype(np.float32)
    return x + 0.2 * gate * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stream")
    ckpt = write_tiny_checkpoint(root / "causal.ckpt", "crnn_causal")
    onnx = root / "causal.onnx"
    export_onnx(load_torch(str(ckpt)), onnx)
    song = write_audio(root / "song.wav", song_signal(3.0), SR, "FLOAT")
    return {"ckpt": ckpt, "onnx": onnx, "song": song, "root": root}


def stems_in(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for stem in STEMS:
        audio, rate = sf.read(folder / f"{stem}.wav", dtype="float32", always_2d=True)
        assert rate == SR
        out[stem] = audio.T
    return out


def cli(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_file_streams_to_aligned_stems_of_its_length_with_stats(files, tmp_path):
    out, stats = tmp_path / "out", tmp_path / "stats.json"
    text = cli("stream", files["song"], "-o", out, "--model", files["onnx"], "--bits", "32", "--stats-json", stats)
    assert "latency 11.6 ms (511 samples)" in text
    got = stems_in(out)
    assert all(a.shape == (2, 3 * SR) for a in got.values())
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(f"{s}.wav" for s in STEMS)
    report = json.loads(stats.read_text())
    for key in ("latency_ms", "block_ms", "compute_ms_p50", "compute_ms_p99", "deadline_misses", "blocks",
                "cpu_percent_realtime", "realtime_factor"):
        assert key in report, key
    assert report["latency_samples"] == 511 and report["block"] == 512 and report["runtime"] == "onnx"
    assert report["blocks"] == -(-3 * SR // 512) and report["compute_ms_p99"] >= report["compute_ms_p50"] > 0
    assert report["block_ms"] == pytest.approx(1e3 * 512 / SR, abs=1e-3)


def test_the_stems_do_not_depend_on_the_block_size(files, tmp_path):
    got = {}
    for block in (97, 512, 4096):
        cli("stream", files["song"], "-o", tmp_path / str(block), "--model", files["onnx"], "--bits", "32",
            "--block", block)
        got[block] = stems_in(tmp_path / str(block))
    for stem in STEMS:
        assert snr_db(got[97][stem], got[512][stem]) >= 60
        assert snr_db(got[4096][stem], got[512][stem]) >= 60


def _pipe(args: list, pcm: bytes, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), input=pcm, cwd=cwd, env=child_env(), capture_output=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("fmt", ["f32le", "s16le"])
def test_raw_pcm_on_stdin_gives_the_stems_of_the_file(files, tmp_path, fmt):
    x, _ = sf.read(files["song"], dtype="float32")                        # (time, channels)
    if fmt == "s16le":
        ints = np.clip(np.floor(x * 32768), -32768, 32767).astype("<i2")
        pcm, song = ints.tobytes(), write_audio(tmp_path / "song16.wav", ints.T / np.float32(32768), SR, "FLOAT")
    else:
        pcm, song = x.astype("<f4").tobytes(), files["song"]
    cli("stream", song, "-o", tmp_path / "file", "--model", files["ckpt"], "--bits", "32")
    done = _pipe(["stream", "-", "--raw-format", fmt, "--rate", SR, "--channels", 2, "-o", tmp_path / "pipe",
                  "--model", files["ckpt"], "--bits", "32", "--block", 1000], pcm, tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    from_file, from_pipe = stems_in(tmp_path / "file"), stems_in(tmp_path / "pipe")
    for stem in STEMS:
        np.testing.assert_array_equal(from_pipe[stem], from_file[stem])


def test_stream_and_separate_agree_except_at_the_edges(files, tmp_path):
    """Why they differ, and where. With hop N/4 the offline engine's centred frame j covers
    [jH - 2H, jH + 2H), exactly the stream's causal frame j + 1: inside the track both see the
    same frames. They differ where the padding differs: offline reflects the signal at both ends,
    the stream starts from zeros (and one more leading frame) and ends on the zeros of its flush.
    The recurrent state carries the start's difference on, and the offline engine restarts it at
    every segment (10 s here: the 12-s song has two); a random tiny GRU forgets both within a few
    frames. Measured (two seeds): 60-64 dB over the whole song, 116-127 dB without its first and
    last 4096 samples. A trained model remembers longer, so it agrees less near the start and the
    segment joins."""
    song = write_audio(tmp_path / "long.wav", song_signal(12.0), SR, "FLOAT")
    for seed in (0, 1):
        ckpt = write_tiny_checkpoint(tmp_path / f"c{seed}.ckpt", "crnn_causal", seed=seed)
        cli("separate", song, "-o", tmp_path / "offline", "--model", ckpt, "--bits", "32", "--filename",
            f"{seed}/{{stem}}.{{ext}}")
        cli("stream", song, "-o", tmp_path / f"stream{seed}", "--model", ckpt, "--bits", "32")
        offline, streamed = stems_in(tmp_path / "offline" / str(seed)), stems_in(tmp_path / f"stream{seed}")
        for stem in STEMS:
            assert offline[stem].shape == streamed[stem].shape == (2, 12 * SR)
            assert snr_db(streamed[stem], offline[stem]) >= 50
            assert snr_db(streamed[stem][:, 4096:-4096], offline[stem][:, 4096:-4096]) >= 90


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_stream_finishes_valid_aligned_files(files, tmp_path, sig, code):
    x, _ = sf.read(files["song"], dtype="float32")
    fed = int(1.5 * SR)  # then the pipe stays open: the command waits in a read when the signal comes
    out = tmp_path / "out"
    proc = subprocess.Popen(command("stream", "-", "--raw-format", "f32le", "--rate", SR, "--channels", 2, "-o", out,
                                    "--model", files["ckpt"], "--bits", "16"),
                            cwd=tmp_path, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(x[:fed].astype("<f4").tobytes())
        proc.stdin.flush()
        lat, block = 511, 512
        enough = 44 + 4 * (fed // block * block - lat)  # a 16-bit stereo wav with every full block in it

        def written() -> bool:
            temps = [p for p in out.glob(".*") if is_temp_name(p.name)] if out.is_dir() else []
            return len(temps) == 4 and all(p.stat().st_size >= enough for p in temps)

        wait_for(written, proc, "the full blocks were written")
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.stdin.close()
    text = output.decode()
    assert proc.returncode == code, text
    assert f"stopped by {sig.name}" in text and "Traceback" not in text
    assert not [p for p in out.iterdir() if is_temp_name(p.name)]
    cli("stream", files["song"], "-o", tmp_path / "whole", "--model", files["ckpt"], "--bits", "16")
    whole = stems_in(tmp_path / "whole")
    for stem, audio in stems_in(out).items():
        assert audio.shape == (2, fed)  # what was streamed, the partial last block included, aligned
        np.testing.assert_array_equal(audio[:, :fed - lat], whole[stem][:, :fed - lat])


@pytest.mark.parametrize("args,message", [
    (["-"], "give --raw-format f32le|s16le, --rate R and --channels C"),
    (["-", "--raw-format", "u8", "--rate", "44100", "--channels", "2"], "--raw-format 'u8': choose one of"),
    (["SONG", "--block", "0"], "--block 0: must be between 1 and"),
    (["SONG", "--bits", "8"], "--bits '8': choose one of 16, 24, 32"),
    (["SONG", "--model", "OFFLINE"], "is not causal, so it cannot stream"),
    (["missing.wav"], "file not found"),
    (["SONG", "--play", "vocals"], "needs the sounddevice package"),
    ([], "no input given"),
], ids=["raw-flags", "raw-format", "block", "bits", "offline-model", "missing", "no-sounddevice", "no-input"])
def test_bad_input_gets_one_line(files, tmp_path, monkeypatch, args, message):
    import sys

    from conftest import write_tiny_checkpoint as tiny

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # `import sounddevice` fails as when it is missing
    offline = tiny(tmp_path / "offline.ckpt", "crnn")
    swap = {"SONG": str(files["song"]), "OFFLINE": str(offline)}
    full = ["stream", *(swap.get(a, a) for a in args)]
    if "--model" not in full and full[1:]:
        full += ["--model", str(files["ckpt"])]
    result = runner.invoke(app, [*full, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


def test_an_onnx_model_streams_without_torch(files, tmp_path):
    code, loaded, out = lean_stemsplit(tmp_path, "stream", files["song"], "--model", files["onnx"], "-o",
                                       tmp_path / "out", block=("torch", "torchaudio", "onnx"))
    assert code == 0, out[-2000:]
    assert loaded == []
    assert all(a.shape == (2, 3 * SR) for a in stems_in(tmp_path / "out").values())


def test_with_no_model_the_shipped_streaming_model_streams_without_torch(files, tmp_path):
    """The shipped default (registry stream_default): its ONNX streaming step, 46.4 ms declared."""
    stats = tmp_path / "stats.json"
    code, loaded, out = lean_stemsplit(tmp_path, "stream", files["song"], "-o", tmp_path / "out", "--stats-json",
                                       stats, block=("torch", "torchaudio", "onnx"))
    assert code == 0, out[-2000:]
    assert loaded == []
    report = json.loads(stats.read_text())
    assert report["model"] == "crnn_stream" and report["runtime"] == "onnx"
    assert report["latency_samples"] == 2047 and report["latency_ms"] == pytest.approx(46.4, abs=0.05)
    got = stems_in(tmp_path / "out")
    assert all(a.shape == (2, 3 * SR) and np.abs(a).max() > 1e-3 for a in got.values())
    mix = sf.read(files["song"], dtype="float32", always_2d=True)[0].T
    # a mask model's stems add up to about the mixture (no mixture-consistency projection: not exactly)
    assert snr_db(mix, sum(got.values())) > 10
