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
