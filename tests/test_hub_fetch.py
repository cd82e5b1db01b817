"""stemsplit.hub.fetch against a local HTTP server: verified downloads, resume, retries, locks,
proxies, fallbacks and the failures a user can meet (offline, checksum, read-only cache)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_proc import child_env
from hub_server import (
    PROXY_VARS,
    FileServer,
    RecordingProxy,
    catalogue,
    closed_port,
    entry,
    hf_source,
    sha256,
    url_source,
)

from stemsplit.hub import cache, fetch
from stemsplit.hub.catalogue import parse
from stemsplit.hub.errors import CacheError, ChecksumError, DownloadError
from stemsplit.hub.http import NetSettings
from stemsplit.hub.lock import file_lock

FAST = NetSettings(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.01, backoff_max=0.05,
                   chunk_bytes=8192)
DATA = bytes(range(256)) * 400  # 102400 bytes
HALF = len(DATA) // 2


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.fixture
def server():
    with FileServer() as s:
        s.files["/w/model.bin"] = DATA
        yield s


def one(name: str, *sources: dict, role: str = "weights"):
    return parse(catalogue(entry(name, [{"role": role, "sources": list(sources)}])))[name]


def events_of(kind: str, events: list) -> list:
    return [e for e in events if e.kind == kind]


def cache_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --- the ordinary path -----------------------------------------------------------------------

def test_a_file_is_downloaded_verified_renamed_and_recorded(server, tmp_path):
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    events, progress = [], []
    got = fetch.ensure(e, lambda *a: progress.append(a), events=events.append, root=tmp_path, settings=FAST)
    path = tmp_path / "tiny" / "model.bin"
    assert progress[0] == ("model.bin", 0, None)  # the catalogue gives no size; the server does
    assert progress[1][2] == len(DATA) and progress[-1] == ("model.bin", len(DATA), len(DATA))
    assert got == {"weights": path} and path.read_bytes() == DATA
    assert cache_files(tmp_path) == ["tiny", "tiny/.model.bin.sha256", "tiny/model.bin"]
    assert json.loads(cache.record_path(path).read_text())["sha256"] == sha256(DATA)
    assert events_of("done", events)[0].done == len(DATA)
    assert events_of("bytes", events)[-1].done == len(DATA)
    assert cache.is_cached(e, tmp_path) and cache.file_digest(path) == sha256(DATA)


def test_a_cached_model_needs_no_network_and_writes_nothing(tmp_path):
    e = one("tiny", url_source(f"http://127.0.0.1:{closed_port()}/model.bin", DATA))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "model.bin").write_bytes(DATA)
    before = cache_files(tmp_path)
    assert fetch.ensure(e, root=tmp_path, settings=FAST) == {"weights": tmp_path / "tiny" / "model.bin"}
    assert cache_files(tmp_path) == before  # no lock file, no probe, no record


def test_the_torch_hub_hash_prefix_in_a_publishers_file_name_is_checked(server, tmp_path):
    prefix = sha256(DATA)[:8]
    server.files[f"/w/vocals-{prefix}.pth"] = DATA
    e = one("umx", url_source(server.url(f"/w/vocals-{prefix}.pth"), sha256_prefix=prefix))
    assert fetch.ensure(e, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    bad = "0" * 8 if prefix != "0" * 8 else "1" * 8
    server.files[f"/w/drums-{bad}.pth"] = DATA
    e = one("umx2", url_source(server.url(f"/w/drums-{bad}.pth"), sha256_prefix=bad))
    with pytest.raises(ChecksumError):
        fetch.ensure(e, root=tmp_path, settings=FAST)


# --- checksum mismatch -------------------------------------------------------------------------

def test_a_checksum_mismatch_names_the_url_and_leaves_nothing(server, tmp_path):
    url = server.url("/w/model.bin")
    e = one("tiny", url_source(url, sha256=sha256(b"another file")))
    with pytest.raises(ChecksumError) as err:
        fetch.ensure(e, root=tmp_path, settings=FAST)
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "checksum mismatch" in msg and err.value.exit_code == 2
    assert cache_files(tmp_path) == []


def test_a_size_that_disagrees_with_the_catalogue_is_refused_before_the_body(server, tmp_path):
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA, size=len(DATA) + 1))
    with pytest.raises(ChecksumError, match="bytes, expected"):
        fetch.ensure(e, root=tmp_path, settings=FAST)
    assert cache_files(tmp_path) == []


# --- interrupted downloads and their resume -----------------------------------------------------

def test_an_interrupted_download_keeps_a_partial_that_the_next_pull_resumes(server, tmp_path):
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    server.faults["/w/model.bin"].append(("drop", HALF))
    with pytest.raises(DownloadError, match="connection dropped"):
        fetch.ensure(e, root=tmp_path, settings=NetSettings(retries=0, read_timeout=2, chunk_bytes=8192))
    partial = tmp_path / "tiny" / ".model.bin.partial"
    assert cache_files(tmp_path) == ["tiny", "tiny/.model.bin.partial"]  # no final file, no temporary
    assert partial.read_bytes() == DATA[:HALF]

    assert fetch.ensure(e, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert server.gets("/w/model.bin") == [None, f"bytes={HALF}-"]
    assert not partial.exists()


def test_a_dropped_connection_is_resumed_within_one_pull(server, tmp_path):
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    server.faults["/w/model.bin"].append(("drop", 30000))
    events = []
    assert fetch.ensure(e, events=events.append, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert server.gets("/w/model.bin") == [None, "bytes=30000-"]
    assert "connection dropped" in events_of("retry", events)[0].message


def test_the_temporary_file_of_a_killed_pull_is_taken_over(server, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / f".model.bin.stemsplit-{dead.pid}-k2j9x0aq.part").write_bytes(DATA[:40000])
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    assert fetch.ensure(e, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert server.gets("/w/model.bin") == ["bytes=40000-"]
    assert cache_files(tmp_path) == ["tiny", "tiny/.model.bin.sha256", "tiny/model.bin"]


def test_a_server_without_range_support_restarts_from_byte_zero(server, tmp_path):
    server.ranges = False
    folder = tmp_path / "tiny"
    folder.mkdir()
    fetch.partial_path(folder / "model.bin").write_bytes(DATA[:HALF])
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    events = []
    assert fetch.ensure(e, events=events.append, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert server.gets("/w/model.bin") == [f"bytes={HALF}-"]  # asked, got the whole file, kept it
    assert any("starting over" in ev.message for ev in events_of("retry", events))


def test_a_partial_of_another_file_is_discarded_and_the_download_starts_over(server, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    fetch.partial_path(folder / "model.bin").write_bytes(b"x" * HALF)
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    assert fetch.ensure(e, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert server.gets("/w/model.bin") == [f"bytes={HALF}-", None]


# --- retries and timeouts ------------------------------------------------------------------------

def test_http_500_and_429_are_retried_then_the_download_succeeds(server, tmp_path):
    server.faults["/w/model.bin"].extend([("status", 500), ("status", 429)])
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    events = []
    assert fetch.ensure(e, events=events.append, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert len(server.gets("/w/model.bin")) == 3
    first, second = (m.message for m in events_of("retry", events))
    assert first.startswith("HTTP 500") and second.startswith("HTTP 429")
    assert "retrying in 0.0s" in second  # the 429's Retry-After: 0, not the backoff


def test_retries_run_out_on_a_server_that_keeps_failing(server, tmp_path):
    server.faults["/w/model.bin"].extend([("status", 503)] * 5)
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    with pytest.raises(DownloadError, match="HTTP 503"):
        fetch.ensure(e, root=tmp_path, settings=FAST)
    assert len(server.gets("/w/model.bin")) == FAST.retries + 1
    assert cache_files(tmp_path) == []


def test_a_stalled_transfer_hits_the_read_timeout_and_is_retried(server, tmp_path):
    server.faults["/w/model.bin"].append(("stall", 3.0))
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    t0 = time.monotonic()
    fast_timeout = NetSettings(connect_timeout=2, read_timeout=0.3, retries=1, backoff=0.01, chunk_bytes=8192)
    assert fetch.ensure(e, root=tmp_path, settings=fast_timeout)["weights"].read_bytes() == DATA
    assert time.monotonic() - t0 < 2.5 and len(server.gets("/w/model.bin")) == 2


# --- offline -------------------------------------------------------------------------------------

def test_offline_a_refused_connection_is_one_line_that_says_what_to_do(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/w/model.bin"
    e = one("tiny", url_source(url, DATA))
    with pytest.raises(DownloadError) as err:
        fetch.ensure(e, root=tmp_path, settings=FAST)
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "connection refused" in msg
    assert "stemsplit models pull tiny --to DIR" in msg and "STEMSPLIT_CACHE=DIR" in msg
    assert cache_files(tmp_path) == []


def test_offline_an_unresolvable_host_fails_at_once_without_retries(tmp_path):
    url = "http://models.stemsplit-test.invalid/w/model.bin"
    e = one("tiny", url_source(url, DATA))
    events = []
    slow_retries = NetSettings(retries=3, backoff=5.0)  # a retry would take seconds
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="cannot resolve the host name"):
        fetch.ensure(e, events=events.append, root=tmp_path, settings=slow_retries)
    assert time.monotonic() - t0 < 4 and not events_of("retry", events)
    assert cache_files(tmp_path) == []


# --- read-only cache -----------------------------------------------------------------------------

def test_a_cache_that_cannot_be_written_is_one_line_naming_the_folder(server, tmp_path):
    # chmod does not stop root (CI runs tests as root): a cache folder below a regular file can
    # never be created, for anyone
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "cache"
    e = one("tiny", url_source(server.url("/w/model.bin"), DATA))
    with pytest.raises(CacheError) as err:
        fetch.ensure(e, root=root, settings=FAST)
    msg = str(err.value)
    assert "\n" not in msg and str(root / "tiny") in msg and "STEMSPLIT_CACHE" in msg
    assert server.gets("/w/model.bin") == []


# --- proxies -------------------------------------------------------------------------------------

def test_http_proxy_is_honoured(tmp_path, monkeypatch):
    url = "http://models.stemsplit-test.invalid/w/model.bin"  # unresolvable: only the proxy can answer
    with RecordingProxy() as proxy:
        proxy.files[url] = DATA
        monkeypatch.setenv("http_proxy", proxy.base)
        got = fetch.ensure(one("tiny", url_source(url, DATA)), root=tmp_path, settings=FAST)
    assert got["weights"].read_bytes() == DATA and proxy.seen == [url]


def test_https_proxy_carries_https_urls(tmp_path, monkeypatch):
    url = "https://models.stemsplit-test.invalid/w/model.bin"
    with RecordingProxy() as proxy:
        monkeypatch.setenv("https_proxy", proxy.base)
        with pytest.raises(DownloadError, match="Tunnel connection failed"):
            fetch.ensure(one("tiny", url_source(url, DATA)), root=tmp_path, settings=FAST)
    # the tunnel was asked of the proxy (which refused it), not of the unresolvable host
    assert proxy.seen and set(proxy.seen) == {"CONNECT models.stemsplit-test.invalid:443"}
    assert cache_files(tmp_path) == []


def test_no_proxy_sends_a_host_past_the_proxy(server, tmp_path, monkeypatch):
    with RecordingProxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.base)
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        got = fetch.ensure(one("tiny", url_source(server.url("/w/model.bin"), DATA)), root=tmp_path, settings=FAST)
    assert got["weights"].read_bytes() == DATA and proxy.seen == [] and len(server.gets("/w/model.bin")) == 1


# --- sources: Hugging Face and fallbacks -----------------------------------------------------------

def test_a_hugging_face_file_is_verified_against_the_sha256_the_hub_serves(server, tmp_path, monkeypatch):
    server.hf[("someone/Model", "main", "abcd1234.safetensors")] = DATA
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    e = one("hfmodel", hf_source("someone/Model", "abcd1234.safetensors"))
    assert fetch.ensure(e, root=tmp_path, settings=FAST)["weights"].read_bytes() == DATA
    assert ("HEAD", "/someone/Model/resolve/main/abcd1234.safetensors", None) in server.log
    assert server.gets(f"/lfs/{sha256(DATA)}") == [None]
    assert json.loads(cache.record_path(tmp_path / "hfmodel" / "abcd1234.safetensors").read_text())["sha256"] \
        == sha256(DATA)


def test_a_hugging_face_file_that_differs_from_the_hubs_sha256_is_refused(server, tmp_path, monkeypatch):
    key = ("someone/Model", "main", "abcd1234.safetensors")
    server.hf[key] = DATA
    server.hf_etag[key] = sha256(b"what the hub claims")
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    e = one("hfmodel", hf_source("someone/Model", "abcd1234.safetensors"))
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch.ensure(e, root=tmp_path, settings=FAST)
    assert cache_files(tmp_path) == []


def test_a_catalogue_pin_that_differs_from_the_hub_is_refused_before_downloading(server, tmp_path, monkeypatch):
    server.hf[("someone/Model", "v2", "w.safetensors")] = DATA
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    e = one("hfmodel", hf_source("someone/Model", "w.safetensors", revision="v2", sha256=sha256(b"pinned")))
    with pytest.raises(ChecksumError, match="the catalogue pins"):
        fetch.ensure(e, root=tmp_path, settings=FAST)
    assert server.gets(f"/lfs/{sha256(DATA)}") == []


def test_an_unreachable_first_source_falls_back_to_the_next(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    server.files["/legacy/955717e8-8726e21a.th"] = DATA
    e = one("demo", hf_source("someone/Model", "955717e8.safetensors"),
            url_source(server.url("/legacy/955717e8-8726e21a.th"), DATA))
    events = []
    got = fetch.ensure(e, events=events.append, root=tmp_path, settings=FAST)
    assert got["weights"] == tmp_path / "demo" / "955717e8-8726e21a.th" and got["weights"].read_bytes() == DATA
    assert "connection refused" in events_of("fallback", events)[0].message
    assert cache.paths(e, tmp_path) == got


def test_when_every_source_fails_the_error_lists_what_was_tried(tmp_path, monkeypatch):
    hub = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", hub)
    legacy = "http://legacy.stemsplit-test.invalid/955717e8-8726e21a.th"
    e = one("demo", hf_source("someone/Model", "955717e8.safetensors"), url_source(legacy, DATA))
    with pytest.raises(DownloadError) as err:
        fetch.ensure(e, root=tmp_path, settings=FAST)
    msg = str(err.value)
    assert f"{hub}/someone/Model/resolve/main/955717e8.safetensors (connection refused)" in msg
    assert f"{legacy} (cannot resolve the host name" in msg and "\n" not in msg


# --- two processes -------------------------------------------------------------------------------

def _pull_process(tmp_path: Path, cat: Path) -> subprocess.Popen:
    env = {k: v for k, v in child_env().items() if k not in PROXY_VARS}
    env.update(STEMSPLIT_CATALOGUE=str(cat), STEMSPLIT_CACHE=str(tmp_path / "cache"))
    return subprocess.Popen([sys.executable, "-m", "stemsplit", "models", "pull", "tiny"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _write_catalogue(tmp_path: Path, server: FileServer) -> Path:
    cat = tmp_path / "catalogue.json"
    cat.write_text(json.dumps(catalogue(entry("tiny", [{"role": "weights", "sources": [
        url_source(server.url("/w/model.bin"), DATA)]}]))))
    return cat


def test_two_processes_pulling_the_same_model_end_with_one_file_downloaded_once(server, tmp_path):
    server.slow = 0.03  # 25 blocks: the first pull takes about 0.8 s, long enough to overlap
    cat = _write_catalogue(tmp_path, server)
    procs = [_pull_process(tmp_path, cat) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert (tmp_path / "cache" / "tiny" / "model.bin").read_bytes() == DATA
    assert server.gets("/w/model.bin") == [None]  # downloaded once
    assert cache_files(tmp_path / "cache") == ["tiny", "tiny/.model.bin.sha256", "tiny/model.bin"]


def test_a_pull_waits_while_another_process_holds_the_files_lock(server, tmp_path):
    cat = _write_catalogue(tmp_path, server)
    folder = tmp_path / "cache" / "tiny"
    folder.mkdir(parents=True)
    with file_lock(folder / ".model.bin.lock"):
        proc = _pull_process(tmp_path, cat)
        time.sleep(2.0)
        assert proc.poll() is None and server.gets("/w/model.bin") == []  # waiting, not downloading
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert "waiting for another stemsplit process" in out
    assert (folder / "model.bin").read_bytes() == DATA and server.gets("/w/model.bin") == [None]
    assert not os.path.exists(folder / ".model.bin.lock")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_pull_stopped_mid_transfer_is_resumed_by_the_next_one(server, tmp_path, sig, code):
    server.slow = 0.05  # 25 blocks of 4 KiB: about 1.25 s for the whole file
    cat = _write_catalogue(tmp_path, server)
    folder = tmp_path / "cache" / "tiny"
    proc = _pull_process(tmp_path, cat)
    deadline = time.monotonic() + 60
    while not [p for p in folder.glob(".model.bin.*.part") if p.stat().st_size >= 8192]:
        assert time.monotonic() < deadline and proc.poll() is None, "the pull never started writing"
        time.sleep(0.02)
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == code, out
    assert not (folder / "model.bin").exists()
    left = [p for p in folder.iterdir() if not p.name.endswith(".lock")]
    assert len(left) == 1  # SIGTERM: the kept .partial; SIGKILL: the dead process's temporary file
    size = left[0].stat().st_size
    assert 0 < size < len(DATA) and left[0].read_bytes() == DATA[:size]

    server.slow = 0.0
    assert fetch.ensure(one("tiny", url_source(server.url("/w/model.bin"), DATA)), root=tmp_path / "cache",
                        settings=FAST)["weights"].read_bytes() == DATA
    assert server.gets("/w/model.bin") == [None, f"bytes={size}-"]
    assert cache_files(tmp_path / "cache") == ["tiny", "tiny/.model.bin.sha256", "tiny/model.bin"]
