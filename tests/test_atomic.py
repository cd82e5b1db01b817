"""Atomic writes: complete or absent, and with the permissions a plain open() gives."""
import json
import stat

import pytest

from stemsplit.atomic import atomic_open, write_bytes_atomic, write_json_atomic, write_text_atomic


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for name, write in (("a.txt", lambda p: write_text_atomic(p, "x")),
                        ("b.bin", lambda p: write_bytes_atomic(p, b"x")),
                        ("c.json", lambda p: write_json_atomic(p, {"x": 1}))):
        write(tmp_path / name)
        assert _mode(tmp_path / name) == _mode(plain), name


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "scores.json"
    write_json_atomic(target, {"old": True})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write('{"new": ')
            raise RuntimeError("killed half way")
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_nan_is_refused_before_the_file_changes(tmp_path):
    target = tmp_path / "m.json"
    write_json_atomic(target, {"v": 1.0})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"v": float("nan")})
    assert json.loads(target.read_text()) == {"v": 1.0}
    assert len(list(tmp_path.iterdir())) == 1


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it now (a reuse this soon is vanishingly rare)


def test_temporary_names_are_hidden_unique_per_process_and_recognisable(tmp_path):
    import os

    from stemsplit.atomic import is_temp_name, mkstemp_beside

    names = set()
    for _ in range(3):
        fd, name = mkstemp_beside(tmp_path / "vocals.wav")
        os.close(fd)
        names.add(os.path.basename(name))
    assert len(names) == 3
    for name in names:
        assert name.startswith(f".vocals.wav.stemsplit-{os.getpid()}-") and name.endswith(".tmp")
        assert is_temp_name(name)
    for other in ("vocals.wav", ".vocals.wav", ".vocals.wav.stage.wav", ".x.stemsplit-12-short.tmp"):
        assert not is_temp_name(other), other


def test_stale_temporaries_of_dead_or_silent_writers_are_removed_and_live_ones_kept(tmp_path):
    import os
    import time

    from stemsplit.atomic import remove_stale_temps

    dead = tmp_path / f".bass.wav.stemsplit-{_dead_pid()}-abcdefgh.tmp"
    live = tmp_path / f".bass.wav.stemsplit-{os.getppid()}-abcdefgh.tmp"  # the test runner's parent lives
    old = tmp_path / f".drums.wav.stemsplit-{os.getppid()}-old00000.stage.tmp"
    mine = tmp_path / "bass.wav"
    for path in (dead, live, old, mine):
        path.write_bytes(b"x")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))  # a live pid, but untouched for a day: a reused pid
    assert sorted(remove_stale_temps(tmp_path)) == sorted([dead, old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, mine.name])


def test_a_writer_removes_only_its_own_temporaries_for_a_target(tmp_path):
    import os

    from stemsplit.atomic import mkstemp_beside, remove_own_temps

    fd, own = mkstemp_beside(tmp_path / "vocals.wav", suffix=".stage.tmp")  # orphaned by an interrupt
    os.close(fd)
    other_run = tmp_path / f".vocals.wav.stemsplit-{os.getppid()}-abcdefgh.tmp"
    other_target = tmp_path / f".drums.wav.stemsplit-{os.getpid()}-abcdefgh.tmp"
    for path in (other_run, other_target):
        path.write_bytes(b"x")
    remove_own_temps(tmp_path / "vocals.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other_run.name, other_target.name])
