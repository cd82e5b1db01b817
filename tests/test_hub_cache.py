"""stemsplit.hub.cache: where the cache is, what counts as cached, SHA-256 records, derived files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hub_server import catalogue, entry, hf_source, sha256, url_source

from stemsplit.hub import cache
from stemsplit.hub.catalogue import parse
from stemsplit.hub.errors import CacheError


def demo():
    return parse(catalogue(entry("demo", [
        {"role": "bag", "inline": {"name": "demo.yaml", "text": "models: ['abc']\n"}},
        {"role": "abc", "sources": [hf_source("o/Demo", "abc.safetensors"),
                                    url_source("https://e.org/abc-0123abcd.th", sha256_prefix="0123abcd")]}])))["demo"]


def test_the_cache_folder_is_stemsplit_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("STEMSPLIT_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "mine"
    assert cache.cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("STEMSPLIT_CACHE")
    assert cache.cache_root() == tmp_path / "xdg" / "stemsplit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec ignores a relative value
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "stemsplit"


def test_any_source_name_counts_as_cached_and_inline_files_need_no_download(tmp_path):
    e = demo()
    assert not cache.is_cached(e, tmp_path) and cache.paths(e, tmp_path) == {}
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "abc-0123abcd.th").write_bytes(b"legacy")  # the fallback source's file
    assert cache.is_cached(e, tmp_path)
    assert cache.paths(e, tmp_path) == {"abc": tmp_path / "demo" / "abc-0123abcd.th"}
    (tmp_path / "demo" / "abc.safetensors").write_bytes(b"hub")  # the preferred one wins when both are there
    assert cache.paths(e, tmp_path)["abc"].name == "abc.safetensors"


def test_a_digest_comes_from_its_record_until_the_file_changes(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"one")
    assert cache.file_digest(f) == sha256(b"one") and cache.record_path(f).is_file()
    cache.write_record(f, "0" * 64, "test")  # a record that still matches size and mtime is trusted
    assert cache.file_digest(f) == "0" * 64
    f.write_bytes(b"two!")
    os.utime(f, ns=(1, 1))
    assert cache.file_digest(f) == sha256(b"two!")


def test_a_derived_file_is_keyed_by_its_sources_and_the_converter_version(tmp_path):
    src = tmp_path / "demo" / "abc.safetensors"
    src.parent.mkdir()
    src.write_bytes(b"weights")
    p1 = cache.derived_path("demo", "onnx", {"abc": src}, "1", ".onnx", root=tmp_path)
    assert p1.parent == tmp_path / "demo" / "derived" and p1.name.startswith("onnx-") and p1.suffix == ".onnx"
    assert cache.derived_path("demo", "onnx", {"abc": src}, "1", ".onnx", root=tmp_path) == p1
    assert cache.derived_path("demo", "onnx", {"abc": src}, "2", ".onnx", root=tmp_path) != p1
    src.write_bytes(b"other weights")
    assert cache.derived_path("demo", "onnx", {"abc": src}, "1", ".onnx", root=tmp_path) != p1


def test_a_derived_file_is_complete_or_absent(tmp_path):
    target = tmp_path / "demo" / "derived" / "onnx-x.onnx"
    with pytest.raises(RuntimeError):
        with cache.derived_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("converter failed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with cache.derived_output(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"graph")
    assert target.read_bytes() == b"graph" and list(target.parent.iterdir()) == [target]


def test_an_unwritable_cache_is_one_line_naming_the_folder_and_the_variable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError) as err:
        cache.writable_dir(blocker / "cache")
    assert str(blocker / "cache") in str(err.value) and "STEMSPLIT_CACHE" in str(err.value)
    assert "\n" not in str(err.value) and not Path(blocker / "cache").exists()


def test_derived_builds_once_then_reads_the_cache(tmp_path):
    src = tmp_path / "demo" / "w.bin"
    src.parent.mkdir()
    src.write_bytes(b"weights")
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        out.write_bytes(b"graph of " + src.read_bytes())

    p = cache.derived("demo", {"w": src}, "onnx", "3", build, root=tmp_path)
    assert p.read_bytes() == b"graph of weights" and p.suffix == ".onnx" and calls[0] != p
    assert cache.derived("demo", {"w": src}, "onnx", "3", build, root=tmp_path) == p and len(calls) == 1

    def broken(out: Path) -> None:
        out.write_bytes(b"half")
        raise ValueError("conversion failed")

    with pytest.raises(ValueError):
        cache.derived("demo", {"w": src}, "onnx", "4", broken, root=tmp_path)
    assert sorted(q.name for q in p.parent.iterdir()) == [p.name]  # no half file, no lock left
