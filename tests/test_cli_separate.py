"""`stemsplit separate` end to end through Typer's runner, on tiny random-weight checkpoints."""
import numpy as np
import pytest
import soundfile as sf
from conftest import tone_mix, write_tiny_checkpoint
from typer.testing import CliRunner

from stemsplit.audio.io import write_audio
from stemsplit.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["separate", *map(str, args)])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.ckpt", "lstm")


@pytest.fixture
def song(tmp_path):
    return write_audio(tmp_path / "in" / "song.wav", tone_mix(1.5), 44100)


def test_every_architecture_separates_a_file(tmp_path, tiny_ckpt, arch, song):
    res = run(song, "--model", tiny_ckpt, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    folder = tmp_path / "out" / arch / "song"
    for stem in ("vocals", "drums", "bass", "other"):
        info = sf.info(folder / f"{stem}.wav")
        assert info.frames == 44100 * 1.5 and info.channels == 2 and info.subtype == "PCM_16"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_folder_batch_with_one_bad_file_keeps_going(tmp_path, ckpt):
    src = tmp_path / "album"
    write_audio(src / "a.wav", tone_mix(1.0), 44100)
    write_audio(src / "disc2" / "b.flac", tone_mix(1.0, seed=1), 44100, "PCM_16")
    (src / "broken.mp3").write_bytes(b"\x00garbage" * 200)
    (src / "notes.txt").write_text("not audio, not picked up")
    res = run(src, "--model", ckpt, "-o", tmp_path / "out")
    assert res.exit_code == 1
    assert "broken.mp3" in res.output and "failed 1" in res.output
    assert (tmp_path / "out" / "tiny" / "a" / "vocals.wav").exists()
    assert (tmp_path / "out" / "tiny" / "b" / "bass.wav").exists()


@pytest.mark.parametrize("make,match", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"RIFF....WAVEfmt garbage" * 10), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros((0, 2)), 44100), "zero length"),
    (lambda p: sf.write(p, np.full((1000, 2), np.nan), 44100, subtype="FLOAT"), "NaN or Inf"),
])
def test_bad_inputs_give_one_line_errors(tmp_path, ckpt, make, match):
    bad = tmp_path / "bad.wav"
    make(bad)
    res = run(bad, "--model", ckpt, "-o", tmp_path / "out")
    assert res.exit_code == 1
    assert match in res.output
    assert not (tmp_path / "out" / "tiny" / "bad").exists() or not any((tmp_path / "out" / "tiny" / "bad").iterdir())


def test_truncated_file_fails_cleanly(tmp_path, ckpt):
    path = write_audio(tmp_path / "t.flac", tone_mix(2.0), 44100, "PCM_16")
    path.write_bytes(path.read_bytes()[:300])
    res = run(path, "--model", ckpt, "-o", tmp_path / "out")
    assert res.exit_code == 1 and "t.flac" in res.output


def test_unwritable_output_folder(tmp_path, ckpt, song):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    res = run(song, "--model", ckpt, "-o", blocker / "out")
    assert res.exit_code == 2 and "not writable" in res.output


def test_not_a_checkpoint(tmp_path, song):
    fake = tmp_path / "fake.ckpt"
    fake.write_text("nope")
    res = run(song, "--model", fake)
    assert res.exit_code == 2 and "not a readable stemsplit checkpoint" in res.output
    res = run(song, "--model", "no-such-model")
    assert res.exit_code == 2 and "not a shipped model" in res.output


@pytest.mark.parametrize("sr,channels,seconds", [(8000, 1, 1.0), (96000, 2, 0.7), (44100, 6, 1.0),
                                                 (22050, 1, 0.05)])
def test_unusual_but_valid_input(tmp_path, ckpt, sr, channels, seconds):
    x = tone_mix(seconds, sr=sr, channels=channels)
    path = write_audio(tmp_path / "odd.wav", x, sr)
    res = run(path, "--model", ckpt, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    info = sf.info(tmp_path / "out" / "tiny" / "odd" / "vocals.wav")
    assert info.samplerate == sr and info.frames == x.shape[1] and info.channels == min(channels, 2)
    if channels > 2:
        assert "separating the first two" in res.output


def test_silence_gives_silent_finite_stems(tmp_path, ckpt):
    path = write_audio(tmp_path / "quiet.wav", np.zeros((2, 44100), np.float32), 44100)
    assert run(path, "--model", ckpt, "-o", tmp_path / "out").exit_code == 0
    y, _ = sf.read(tmp_path / "out" / "tiny" / "quiet" / "drums.wav")
    assert np.isfinite(y).all() and np.abs(y).max() < 1e-3


def _written(folder):
    return {p.stem: sf.read(p, dtype="float64")[0] for p in sorted(folder.iterdir())}


def test_residual_karaoke_sums_back_to_the_mixture(tmp_path, ckpt, song):
    """The exact case (README): float wav and nothing rescaled, so stems + residual = input
    to float32 rounding. At 16 bits each file is rounded on its own."""
    x, _ = sf.read(song, dtype="float64")
    assert np.abs(x).max() < 1.0  # nothing for clip protection to do
    res = run(song, "--model", ckpt, "-o", tmp_path / "out", "--stems", "vocals", "--residual",
              "--bits", "32")
    assert res.exit_code == 0, res.output
    assert "rescaled" not in res.output
    out = _written(tmp_path / "out" / "tiny" / "song")
    assert sorted(out) == ["no_vocals", "vocals"]
    assert np.abs(out["vocals"] + out["no_vocals"] - x).max() < 1e-6
    assert np.abs(out["vocals"]).max() > 0.01 and np.abs(out["no_vocals"]).max() > 0.01  # both carry signal
    res = run(song, "--model", ckpt, "-o", tmp_path / "out2", "--stems", "vocals,drums", "--residual",
              "--bits", "32")
    out = _written(tmp_path / "out2" / "tiny" / "song")
    assert sorted(out) == ["accompaniment", "drums", "vocals"]
    assert np.abs(sum(out.values()) - x).max() < 1e-6
    res = run(song, "--model", ckpt, "-o", tmp_path / "out3", "--stems", "vocals", "--residual")
    out = _written(tmp_path / "out3" / "tiny" / "song")
    assert np.abs(out["vocals"] + out["no_vocals"] - x).max() < 3 / 32768  # 16-bit rounding, per file


def test_template_format_and_bits(tmp_path, ckpt, song):
    res = run(song, "--model", ckpt, "-o", tmp_path / "o", "--filename", "{track}_{stem}.{ext}",
              "--format", "flac", "--bits", "24")
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "o" / "song_bass.flac").subtype == "PCM_24"
    res = run(song, "--model", ckpt, "--filename", "{track}.{ext}")
    assert res.exit_code == 2 and "{stem}" in res.output
    res = run(song, "--model", ckpt, "--filename", "{artist}/{stem}.wav")
    assert res.exit_code == 2 and "unknown field {artist}" in res.output
    res = run(song, "--model", ckpt, "--format", "flac", "--bits", "32")
    assert res.exit_code == 2 and "not supported" in res.output


def test_unknown_stem_is_refused(tmp_path, ckpt, song):
    res = run(song, "--model", ckpt, "--stems", "piano")
    assert res.exit_code == 2 and "it has: vocals, drums, bass, other" in res.output


def test_clipping_protection_is_reported(tmp_path, ckpt):
    loud = write_audio(tmp_path / "loud.wav", tone_mix(1.0) * 8, 44100)
    res = run(loud, "--model", ckpt, "-o", tmp_path / "out", "--stems", "vocals", "--residual")
    assert res.exit_code == 0
    assert "rescaled by" in res.output
    y, _ = sf.read(tmp_path / "out" / "tiny" / "loud" / "no_vocals.wav")
    assert np.abs(y).max() <= 1.0
    x, _ = sf.read(loud, dtype="float64")
    rescaled = _written(tmp_path / "out" / "tiny" / "loud")
    assert np.abs(rescaled["vocals"] + rescaled["no_vocals"] - x).max() > 0.1  # rescaled: no longer the sum
    res = run(loud, "--model", ckpt, "-o", tmp_path / "c", "--clip", "clamp")
    assert res.exit_code == 0 and "clamped" in res.output
    # float wav without clip protection keeps the exact sum, even above full scale
    res = run(loud, "--model", ckpt, "-o", tmp_path / "n", "--stems", "vocals", "--residual", "--bits", "32",
              "--clip", "none")
    assert res.exit_code == 0 and "rescaled" not in res.output and "clamped" not in res.output
    kept = _written(tmp_path / "n" / "tiny" / "loud")
    assert np.abs(kept["no_vocals"]).max() > 1.0
    assert np.abs(kept["vocals"] + kept["no_vocals"] - x).max() < 1e-6


def test_skip_existing_and_shards(tmp_path, ckpt):
    src = tmp_path / "many"
    for i in range(4):
        write_audio(src / f"t{i}.wav", tone_mix(0.3, seed=i), 44100)
    out = tmp_path / "out"
    res1 = run(src, "--model", ckpt, "-o", out, "--shard", "1/2")
    res2 = run(src, "--model", ckpt, "-o", out, "--shard", "2/2")
    assert res1.exit_code == res2.exit_code == 0
    assert "separated 2 file(s)" in res1.output and "separated 2 file(s)" in res2.output
    assert len(list((out / "tiny").iterdir())) == 4
    res = run(src, "--model", ckpt, "-o", out, "--skip-existing")
    assert "separated 0 file(s), skipped 4" in res.output
    assert run(src, "--model", ckpt, "--shard", "3/2").exit_code == 2


def test_engine_options_are_passed_through(tmp_path, ckpt, song):
    """Every engine flag reaches the engine: each one changes the stems written, and the Wiener
    post-filter makes them add up to the input."""
    def stems(name, *flags):
        res = run(song, "--model", ckpt, "-o", tmp_path / name, "--device", "cpu", "--jobs", "1", *flags)
        assert res.exit_code == 0, res.output
        out = {}
        for stem in ("vocals", "drums", "bass", "other"):
            y, sr = sf.read(tmp_path / name / "tiny" / "song" / f"{stem}.wav", dtype="float32", always_2d=True)
            assert sr == 44100 and y.shape == (int(44100 * 1.5), 2), stem
            out[stem] = y
        return out

    def moved(a, b):
        return max(np.abs(a[s] - b[s]).max() for s in a)

    base = stems("base")
    assert moved(stems("again"), base) == 0  # deterministic: what changes below is the flag's doing
    # short segments without overlap leave seams; the overlap's cross-fade takes them out again
    seams = stems("seams", "--segment", "0.2", "--overlap", "0")
    assert moved(seams, base) > 1e-3
    assert moved(stems("faded", "--segment", "0.2", "--overlap", "0.5"), seams) > 1e-3
    assert moved(stems("shifts", "--shifts", "2"), base) > 1e-3
    wiener = stems("wiener", "--wiener-iterations", "1")
    assert moved(wiener, base) > 1e-3
    mix, _ = sf.read(song, dtype="float32", always_2d=True)
    for out in (wiener, stems("all", "--segment", "0.2", "--overlap", "0.5", "--shifts", "2",
                              "--wiener-iterations", "1")):
        assert np.abs(sum(out.values()) - mix).max() < 1e-2 * np.abs(mix).max()
    assert np.abs(sum(base.values()) - mix).max() > 0.1 * np.abs(mix).max()  # plain masks do not
    res = run(song, "--model", ckpt, "--device", "tpu")
    assert res.exit_code == 2 and "--device 'tpu'" in res.output and res.output.count("\n") == 1


def test_no_input_and_list_models():
    res = run()
    assert res.exit_code == 2 and "no input given" in res.output
    res = run("--list-models")
    assert res.exit_code == 0


def test_other_subcommands_exist():
    res = runner.invoke(app, ["--help"])
    for name in ("prepare", "train", "separate", "evaluate"):
        assert name in res.output


def test_runtime_flag(tmp_path, ckpt, song):
    """--runtime torch|onnx|auto: an exported model gives the checkpoint's stems on ONNX Runtime;
    impossible combinations are one line and exit 2 before any work."""
    from stemsplit.pipelines.export import export_model

    onnx = tmp_path / "tiny.onnx"
    export_model(str(ckpt), onnx)

    def stems(name, model, *flags):
        res = run(song, "--model", model, "-o", tmp_path / name, "--bits", "32", "--jobs", "1", *flags)
        assert res.exit_code == 0, res.output
        return {s: sf.read(tmp_path / name / "tiny" / "song" / f"{s}.wav", dtype="float32")[0]
                for s in ("vocals", "drums", "bass", "other")}

    on_torch = stems("torch", ckpt, "--runtime", "torch")
    for name, flags in (("onnx", ["--runtime", "onnx"]), ("auto", [])):
        on_onnx = stems(name, onnx, *flags)
        for s in on_torch:
            np.testing.assert_allclose(on_onnx[s], on_torch[s], rtol=0, atol=1e-4, err_msg=s)
    for flags, message in ((["--model", ckpt, "--runtime", "onnx"], "has no ONNX form"),
                           (["--model", onnx, "--runtime", "torch"], "is an ONNX model, which the torch runtime"),
                           (["--runtime", "onnx", "--device", "cuda"], "--runtime onnx runs on the CPU"),
                           (["--runtime", "jax"], "--runtime 'jax': choose one of auto, torch, onnx")):
        res = run(song, "-o", tmp_path / "bad", *flags)
        assert res.exit_code == 2 and message in res.output and res.output.strip().count("\n") == 0, res.output
