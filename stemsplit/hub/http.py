"""HTTP for the hub: urllib with separate connect and read timeouts, the proxy variables, and a
classification of failures into "try again" and "give up on this source".

The proxy variables (``http_proxy``, ``https_proxy``, ``no_proxy``, upper or lower case) are read
by urllib's ProxyHandler each time an opener is built, as curl and pip read them.
"""
from __future__ import annotations

import functools
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from stemsplit.version import __version__

USER_AGENT = f"stemsplit/{__version__} (+model download)"


@dataclass(frozen=True)
class NetSettings:
    """Timeouts in seconds; ``retries`` further attempts per source after the first, waiting
    ``backoff`` x 2^n (capped at ``backoff_max``, with random jitter) between them."""

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0
    backoff_max: float = 30.0
    chunk_bytes: int = 1 << 20


class _TimedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, read_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self):
        super().connect()  # bounded by self.timeout: the connect timeout
        self.sock.settimeout(self._read_timeout)


class _TimedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, read_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self):
        super().connect()
        self.sock.settimeout(self._read_timeout)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float):
        super().__init__()
        self._read_timeout = read_timeout

    def http_open(self, req):
        return self.do_open(functools.partial(_TimedHTTPConnection, read_timeout=self._read_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float):
        super().__init__(context=ssl.create_default_context())
        self._read_timeout = read_timeout

    def https_open(self, req):
        return self.do_open(functools.partial(_TimedHTTPSConnection, read_timeout=self._read_timeout), req,
                            context=self._context)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back as HTTPError, so their headers can be read (the hub's checksum)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def opener(settings: NetSettings, follow_redirects: bool = True) -> urllib.request.OpenerDirector:
    handlers = [urllib.request.ProxyHandler(), _HTTPHandler(settings.read_timeout),
                _HTTPSHandler(settings.read_timeout)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> urllib.request.Request:
    return urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})})


# --- failures ---------------------------------------------------------------------------------

class TransferError(Exception):
    """One attempt at one URL failed. ``retry``: worth another attempt at the same URL;
    ``offline``: the host could not be reached; ``mismatch``: it serves another file than expected."""

    def __init__(self, reason: str, retry: bool, offline: bool = False, retry_after: float | None = None,
                 mismatch: bool = False):
        super().__init__(reason)
        self.reason, self.retry, self.offline, self.retry_after = reason, retry, offline, retry_after
        self.mismatch = mismatch


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return None


def classify(exc: BaseException) -> TransferError:
    """An exception of urllib/http.client/socket -> a TransferError with a short reason."""
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        code = exc.code
        retry = code == 429 or code >= 500
        return TransferError(f"HTTP {code} {exc.reason}".strip(), retry=retry,
                             retry_after=_retry_after(exc.headers) if retry else None)
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        # no name resolution: offline, or a host that does not exist; retrying within seconds is futile
        return TransferError("cannot resolve the host name (offline?)", retry=False, offline=True)
    if isinstance(reason, ConnectionRefusedError):
        return TransferError("connection refused", retry=True, offline=True)
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return TransferError("timed out", retry=True, offline=True)
    if isinstance(reason, ssl.SSLError):
        return TransferError(f"TLS error: {reason}", retry=False)
    if isinstance(reason, (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError)):
        return TransferError("the connection dropped", retry=True)
    if isinstance(reason, (http.client.HTTPException, OSError)):
        return TransferError(f"network error: {reason}", retry=True, offline=True)
    raise exc
