"""A local HTTP server for the hub's tests: files with Range support, a fake Hugging Face resolve
endpoint, injected faults, a recording proxy, and catalogue entries that point at them.

Nothing here touches the network: every server listens on 127.0.0.1 on a free port.
"""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
              "ALL_PROXY")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FileServer:
    """``files``: path -> bytes. ``faults``: path -> queue of faults, one taken per GET:
    ("status", code) answers that code; ("drop", n) sends n bytes of the body, then closes;
    ("stall", seconds) sends the headers, then waits before the body. ``ranges``: False makes
    the server ignore Range. ``slow``: seconds to wait between 4 KiB blocks of a body.
    ``hf``: (repo, revision, path) -> bytes, served as Hugging Face serves LFS files: the resolve
    URL answers 302 with X-Linked-Etag (the sha256, or ``hf_etag`` when set) and X-Linked-Size."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hf: dict[tuple[str, str, str], bytes] = {}
        self.hf_etag: dict[tuple[str, str, str], str] = {}
        self.faults: dict[str, deque] = defaultdict(deque)
        self.ranges = True
        self.slow = 0.0
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def gets(self, path: str) -> list[str | None]:
        """The Range headers of the GET requests for ``path`` so far (None: no Range)."""
        with self.lock:
            return [r for m, p, r in self.log if m == "GET" and p == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _record(self):
                with server.lock:
                    server.log.append((self.command, self.path, self.headers.get("Range")))

            def do_HEAD(self):
                self._record()
                self._route(head=True)

            def do_GET(self):
                self._record()
                self._route(head=False)

            def _route(self, head: bool):
                for (repo, rev, path), data in server.hf.items():
                    if self.path == f"/{repo}/resolve/{rev}/{path}":
                        etag = server.hf_etag.get((repo, rev, path), sha256(data))
                        self.send_response(302)
                        self.send_header("Location", f"/lfs/{sha256(data)}")
                        self.send_header("X-Linked-Etag", f'"{etag}"')
                        self.send_header("X-Linked-Size", str(len(data)))
                        self.send_header("ETag", '"0123abc"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    if self.path == f"/lfs/{sha256(data)}":
                        return self._serve(data, head)
                if self.path in server.files:
                    return self._serve(server.files[self.path], head)
                self.send_error(404)

            def _serve(self, data: bytes, head: bool):
                fault = None
                if not head:
                    with server.lock:
                        queue = server.faults.get(self.path)
                        fault = queue.popleft() if queue else None
                if fault and fault[0] == "status":
                    self.send_response(fault[1])
                    if fault[1] == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.ranges and not head:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                    self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:
                    return
                if fault and fault[0] == "stall":
                    time.sleep(fault[1])
                if fault and fault[0] == "drop":
                    body = body[:fault[1]]
                for i in range(0, len(body), 4096):
                    if server.slow:
                        time.sleep(server.slow)
                    try:
                        self.wfile.write(body[i:i + 4096])
                    except OSError:
                        return
                if fault and fault[0] == "drop":
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

        return Handler


class RecordingProxy:
    """A forward proxy: records each absolute URL asked for and answers it from ``files`` (URL ->
    bytes), whatever the host (which need not exist); records and refuses CONNECT (https) tunnels."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_CONNECT(self):  # an https URL through the proxy: record the tunnel asked for, refuse it
                proxy.seen.append(f"CONNECT {self.path}")
                self.send_error(502)

            def do_GET(self):
                proxy.seen.append(self.path)
                data = proxy.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- catalogue entries for tests ----------------------------------------------------------------

def url_source(url: str, data: bytes | None = None, **extra) -> dict:
    src = {"kind": "url", "url": url, **extra}
    if data is not None and "sha256" not in extra and "sha256_prefix" not in extra:
        src["sha256"] = sha256(data)
    return src


def hf_source(repo: str, path: str, **extra) -> dict:
    return {"kind": "huggingface", "repo": repo, "path": path, **extra}


def entry(name: str, files: list[dict], **extra) -> dict:
    """A catalogue entry (JSON form); ``files``: [{"role": ..., "sources": [...]}, ...]."""
    return {"name": name, "title": f"test model {name}", "format": "openunmix",
            "licence": {"name": "MIT", "url": "https://example.org/licence"}, "stems": ["vocals", "other"],
            "sample_rate": 44100, "download_bytes": 1000, "published_score": None, "files": files, "options": {},
            **extra}


def catalogue(*entries: dict) -> dict:
    return {"schema": 1, "models": list(entries)}
