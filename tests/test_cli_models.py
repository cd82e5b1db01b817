"""`stemsplit models pull`: pulls verified files into the cache or --to DIR, one line per failure,
exit codes 0 / 1 (some of several failed) / 2 (one model failed, or a usage error)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import PROXY_VARS, FileServer, catalogue, entry, sha256, url_source
from typer.testing import CliRunner

from stemsplit.cli import app
from stemsplit.hub import catalogue as hub_catalogue
from stemsplit.hub import fetch

DATA = bytes(range(256)) * 64
OTHER = b"bag of weights" * 100


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    with FileServer() as s:
        s.files["/w/tiny.bin"] = DATA
        s.files["/w/other.bin"] = OTHER
        yield s


def write_catalogue(tmp_path: Path, server: FileServer, tiny_sha: str | None = None) -> Path:
    cat = catalogue(
        entry("tiny", [{"role": "weights", "sources": [
            url_source(server.url("/w/tiny.bin"), sha256=tiny_sha or sha256(DATA))]}]),
        entry("other", [{"role": "weights", "sources": [url_source(server.url("/w/other.bin"), OTHER)]},
                        {"role": "bag", "inline": {"name": "other.yaml", "text": "models: ['x']\n"}}]))
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(cat))
    return path


def run(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(app, ["models", "pull", *args], env=env)


def test_pull_to_a_folder_that_an_air_gapped_machine_then_uses(server, tmp_path):
    cat, out = write_catalogue(tmp_path, server), tmp_path / "for-the-server"
    env = {"STEMSPLIT_CATALOGUE": str(cat), "STEMSPLIT_CACHE": str(tmp_path / "unused")}
    res = run(["tiny", "other", "--to", str(out)], env)
    assert res.exit_code == 0, res.output
    assert f"tiny: pulled into {out / 'tiny'}" in res.output and "checksum verified" in res.output
    assert "set STEMSPLIT_CACHE" in res.output
    assert (out / "tiny" / "tiny.bin").read_bytes() == DATA and (out / "other" / "other.yaml").is_file()
    assert not (tmp_path / "unused").exists()

    again = run(["tiny", "--to", str(out)], env)
    assert again.exit_code == 0 and "tiny: already in" in again.output
    assert len(server.gets("/w/tiny.bin")) == 1

    server.__exit__()  # the "air-gapped server": nothing answers any more
    entries = hub_catalogue.read(cat)
    for name in ("tiny", "other"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STEMSPLIT_CACHE", str(out))
            got = fetch.ensure(entries[name])
        assert all(p.parent == out / name and p.is_file() for p in got.values())


def test_a_checksum_mismatch_exits_2_with_one_line_and_leaves_nothing(server, tmp_path):
    cat, cache = write_catalogue(tmp_path, server, tiny_sha=sha256(b"not it")), tmp_path / "cache"
    res = run(["tiny"], {"STEMSPLIT_CATALOGUE": str(cat), "STEMSPLIT_CACHE": str(cache)})
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and server.url("/w/tiny.bin") in errors[0] and "checksum mismatch" in errors[0]
    assert list(cache.rglob("*")) == []


def test_one_bad_name_does_not_stop_the_others_and_exits_1(server, tmp_path):
    cat, cache = write_catalogue(tmp_path, server), tmp_path / "cache"
    res = run(["nosuch", "tiny"], {"STEMSPLIT_CATALOGUE": str(cat), "STEMSPLIT_CACHE": str(cache)})
    assert res.exit_code == 1, res.output
    assert "error: nosuch: unknown model 'nosuch'" in res.output and "tiny: pulled into" in res.output
    assert (cache / "tiny" / "tiny.bin").read_bytes() == DATA


def test_an_unreachable_server_names_the_url_and_the_air_gap_route(tmp_path):
    # a host that cannot resolve fails without retries, so the CLI's default settings stay fast
    url = "http://models.stemsplit-test.invalid/w/tiny.bin"
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue(entry("tiny", [{"role": "weights", "sources": [url_source(url, DATA)]}]))))
    res = run(["tiny"], {"STEMSPLIT_CATALOGUE": str(path), "STEMSPLIT_CACHE": str(tmp_path / "cache")})
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0] and "cannot resolve the host name" in errors[0]
    assert "stemsplit models pull tiny --to DIR" in errors[0] and "STEMSPLIT_CACHE=DIR" in errors[0]


def test_a_cache_that_cannot_be_written_exits_2_naming_it(server, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = run(["tiny"], {"STEMSPLIT_CATALOGUE": str(write_catalogue(tmp_path, server)),
                         "STEMSPLIT_CACHE": str(blocker / "cache")})
    assert res.exit_code == 2, res.output
    assert str(blocker / "cache") in res.output and "STEMSPLIT_CACHE" in res.output
    assert server.gets("/w/tiny.bin") == []


def test_a_broken_catalogue_override_exits_2_naming_the_key(server, tmp_path):
    cat = write_catalogue(tmp_path, server)
    data = json.loads(cat.read_text())
    data["models"][0]["mirror"] = "x"
    cat.write_text(json.dumps(data))
    res = run(["tiny"], {"STEMSPLIT_CATALOGUE": str(cat), "STEMSPLIT_CACHE": str(tmp_path / "cache")})
    assert res.exit_code == 2 and "unknown key 'mirror'" in res.output


def test_no_name_is_a_usage_error():
    assert run([], {}).exit_code == 2
