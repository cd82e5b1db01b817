"""`stemsplit separate` under bad input, kills, two runs at once and a full disk, run as a user
runs it: the real command in child processes (tests/cli_proc.py). Each failure must give one
line naming the file or flag, a non-zero exit, and leave no temporary file behind."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_proc import finish, run, run_all, start, wait_for
from conftest import tone_mix, write_tiny_checkpoint

from stemsplit.atomic import is_temp_name
from stemsplit.audio.io import write_audio

STEMS = ("vocals", "drums", "bass", "other")
SR = 44100
# each audio write sleeps 50 ms (fault_wrapper.py), so a signal sent when the first temporary file
# appears lands mid-write on any machine; unslowed, a tiny model can finish before the signal does
SLOW_WRITES = ["slow", "50"]


def temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if is_temp_name(p.name))


def stems_of(folder: Path) -> dict[str, bytes]:
    return {s: (folder / f"{s}.wav").read_bytes() for s in STEMS}


def assert_complete(folder: Path, frames: int) -> None:
    for stem in STEMS:
        audio, rate = sf.read(folder / f"{stem}.wav", dtype="float32")
        assert rate == SR and audio.shape == (frames, 2) and np.isfinite(audio).all(), (folder, stem)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", "lstm")


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("songs")
    for i, name in enumerate(["a", "b", "c"]):
        write_audio(folder / f"{name}.wav", tone_mix(1.0 + 0.25 * i, seed=i), SR, "PCM_16")
    write_audio(folder / "long" / "long.wav", tone_mix(8.0, seed=7), SR, "PCM_16")
    return folder


def test_every_bad_input_gets_one_failed_line_and_the_good_file_is_written(tmp_path, ckpt, songs):
    bad = tmp_path / "in"
    (bad / "no_audio_here").mkdir(parents=True)
    (bad / "no_audio_here" / "notes.txt").write_text("not audio")
    (bad / "zero.wav").write_bytes(b"")
    (bad / "garbage.mp3").write_bytes(b"\x00garbage" * 200)
    whole = write_audio(bad / "truncated.wav", tone_mix(2.0), SR, "PCM_16").read_bytes()
    (bad / "truncated.wav").write_bytes(whole[: len(whole) // 2])  # the header still promises 2 s
    write_audio(bad / "blocked.wav", tone_mix(0.5), SR, "PCM_16")
    (tmp_path / "out" / "tiny" / "blocked" / "drums.wav").mkdir(parents=True)  # an output path that is a folder
    res = run("separate", bad / "no_audio_here", bad / "zero.wav", bad / "garbage.mp3", bad / "truncated.wav",
              bad / "blocked.wav", bad / "missing.wav", songs / "a.wav", "--model", ckpt, "-o", tmp_path / "out",
              "--jobs", 1, cwd=tmp_path)
    assert res.code == 1, res
    expect = {"no_audio_here": "no audio files in this folder", "zero.wav": "file is empty (0 bytes)",
              "garbage.mp3": "not a readable audio file", "missing.wav": "file not found",
              "truncated.wav": "truncated: its header promises 2.00 s of audio but the file holds 1.00 s",
              "blocked.wav": "output path is an existing folder"}
    for name, reason in expect.items():
        (line,) = [x for x in res.lines("FAILED ") if name in x]  # exactly one progress line per bad input
        assert reason in line, res
    assert "separated 1 file(s), skipped 0, failed 6" in res.out
    assert "Traceback" not in res.out
    assert_complete(tmp_path / "out" / "tiny" / "a", SR)
    assert not (tmp_path / "out" / "tiny" / "truncated").exists()
    assert sorted(p.name for p in (tmp_path / "out" / "tiny" / "blocked").iterdir()) == ["drums.wav"]
    assert temps(tmp_path / "out") == []


def test_numeric_flags_are_refused_before_any_work(tmp_path, ckpt, songs):
    song, out = songs / "a.wav", tmp_path / "out"
    cases = {"--segment inf": "--segment inf: must be a finite number",
             "--segment nan": "--segment nan: must be a finite number",
             "--segment 0": "--segment 0: must be > 0",
             "--segment -2": "--segment -2: must be > 0",
             "--overlap 1": "--overlap 1: must be a fraction in [0, 1)",
             "--overlap nan": "--overlap nan: must be a finite number",
             "--shifts -1": "--shifts -1: must be between 0 and",
             "--wiener-iterations -1": "--wiener-iterations -1: must be between 0 and",
             "--jobs 0": "--jobs 0: must be in [1, 1024]",
             "--bits 12": "--bits '12': choose one of 16, 24, 32",
             "--format flac --bits 32": "output format flac/32-bit is not supported",
             "--shard 3/2": "--shard '3/2': i must be between 1 and N"}
    results = run_all([["separate", song, "--model", ckpt, "-o", out, *flag.split()] for flag in cases], tmp_path)
    for (flag, message), res in zip(cases.items(), results):
        (line,) = res.out.strip().splitlines()
        assert res.code == 2 and line.startswith("error: ") and message in line, (flag, res)
    assert not out.exists() or not any(out.rglob("*.wav"))  # nothing was separated


def test_two_concurrent_skip_existing_runs_both_finish_with_identical_stems(tmp_path, ckpt, songs):
    from stemsplit.pipelines.separate import SeparateRequest, run_separate

    class Quiet:
        def __getattr__(self, name):
            return lambda *a, **k: None

    inputs = [songs / f"{n}.wav" for n in "abc"]
    reference = tmp_path / "single"
    assert run_separate(SeparateRequest(inputs=inputs, out_dir=reference, model=str(ckpt), jobs=1), Quiet()).ok
    shared = tmp_path / "shared"
    args = ["separate", *inputs, "--model", ckpt, "-o", shared, "--skip-existing", "--jobs", 1]
    first, second = start(*args, cwd=tmp_path), start(*args, cwd=tmp_path)
    for res in (finish(first), finish(second)):
        assert res.code == 0, res
    for name in "abc":
        assert stems_of(shared / "tiny" / name) == stems_of(reference / "tiny" / name), name
    assert temps(shared) == []


@pytest.mark.parametrize("sig,code,message", [(signal.SIGTERM, 143, "stopped by SIGTERM"),
                                              (signal.SIGINT, 130, "interrupted")], ids=["SIGTERM", "SIGINT"])
def test_a_signal_exits_with_its_code_and_leaves_no_temporary_file(tmp_path, ckpt, songs, sig, code, message):
    out = tmp_path / "out"
    proc = start("separate", songs / "long" / "long.wav", "--model", ckpt, "-o", out, "--jobs", 1, cwd=tmp_path,
                 wrapper=SLOW_WRITES)
    wait_for(lambda: temps(out), proc, "the first temporary file appeared")
    proc.send_signal(sig)
    res = finish(proc)
    assert res.code == code, res
    assert message in res.out and "Traceback" not in res.out
    assert temps(out) == [] and not list(out.rglob("*.wav"))  # nothing half-written under any name


def test_kill_9_then_a_rerun_cleans_up_and_completes(tmp_path, ckpt, songs):
    out = tmp_path / "out"
    args = ["separate", songs / "long", songs / "a.wav", "--model", ckpt, "-o", out, "--skip-existing", "--jobs", 1]
    proc = start(*args, cwd=tmp_path, wrapper=SLOW_WRITES)
    wait_for(lambda: temps(out), proc, "the first temporary file appeared")
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    left = temps(out)
    assert left and all(f".stemsplit-{proc.pid}-" in p.name for p in left)  # what a dead writer leaves
    folder = out / "tiny" / "long"
    live = folder / f".vocals.wav.stemsplit-{os.getpid()}-abcd1234.tmp"  # a writer that is still running
    live.write_bytes(b"partial")
    res = run(*args, cwd=tmp_path)
    assert res.code == 0 and "separated 2 file(s), skipped 0" in res.out, res  # temporaries are no outputs
    assert_complete(folder, 8 * SR)
    assert_complete(out / "tiny" / "a", SR)
    assert temps(out) == [live]  # the dead run's files are gone; the live writer's file is untouched


@pytest.mark.parametrize("fault", [["enospc", 3_000_000], ["fsize", 1_000_000]], ids=["enospc", "fsize"])
def test_a_full_disk_stops_with_one_line_and_keeps_the_earlier_files(tmp_path, ckpt, songs, fault):
    """``a`` (1 s) fits; ``long`` (8 s) does not. enospc: a simulated full disk; fsize: a real
    kernel write failure inside libsndfile."""
    out = tmp_path / "out"
    res = run("separate", songs / "a.wav", songs / "long" / "long.wav", "--model", ckpt, "-o", out, "--jobs", 1,
              cwd=tmp_path, wrapper=[str(v) for v in fault])
    assert res.code == 2, res
    (line,) = res.lines("error:")
    assert "disk full while writing" in line and "long" in line and "free some space" in line, res
    assert "Traceback" not in res.out
    assert_complete(out / "tiny" / "a", SR)
    assert not list((out / "tiny" / "long").glob("*.wav"))  # no partial stem under a real name
    assert temps(out) == []
