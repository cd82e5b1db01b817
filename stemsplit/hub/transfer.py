"""One URL into one file: streamed, resumed with HTTP Range, retried with backoff.

``fetch_url`` appends a URL's bytes to a partial file, asking for ``Range: bytes=<size>-`` when
the file already holds a beginning. A server that answers 200 to a range request (no Range
support) makes it start over from byte 0. A dropped connection, a stall longer than the read
timeout, HTTP 5xx and 429 are retried (waiting ``backoff`` x 2^n, with jitter, or the server's
Retry-After); each retry resumes where the last one stopped. Nothing here knows about caches or
checksums: stemsplit.hub.fetch decides what the bytes are worth.
"""
from __future__ import annotations

import random
import re
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from stemsplit.hub.http import NetSettings, TransferError, classify, opener, request

T = TypeVar("T")
BytesCallback = Callable[[int, "int | None"], None]  # (bytes in the file, expected total or None)
NoteCallback = Callable[[str], None]
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def backoff_seconds(attempt: int, settings: NetSettings) -> float:
    """The wait before retry ``attempt`` (0-based): exponential, capped, with full jitter in its
    upper half so that many clients that failed together do not come back together."""
    base = min(settings.backoff_max, settings.backoff * (2 ** attempt))
    return base * (0.5 + random.random() / 2)


def with_retries(attempt_fn: Callable[[], T], settings: NetSettings, note: NoteCallback | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """``attempt_fn()`` until it succeeds, its failure is not worth retrying, or the retries run out;
    the last failure is raised as a TransferError."""
    attempt = 0
    while True:
        try:
            return attempt_fn()
        except Exception as exc:  # classify re-raises what is not a network failure
            err = classify(exc)
            if not err.retry or attempt >= settings.retries:
                raise err from None
            wait = err.retry_after if err.retry_after is not None else backoff_seconds(attempt, settings)
            wait = min(wait, settings.backoff_max)
            if note is not None:
                note(f"{err.reason}; retrying in {wait:.1f}s (attempt {attempt + 2} of {settings.retries + 1})")
            sleep(wait)
            attempt += 1


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _attempt(url: str, part: Path, settings: NetSettings, expect_size: int | None,
             on_bytes: BytesCallback | None, note: NoteCallback | None) -> None:
    offset = part.stat().st_size
    if expect_size is not None and offset > expect_size:
        part.write_bytes(b"")  # a leftover longer than the file cannot be its beginning
        offset = 0
    if expect_size is not None and offset == expect_size:
        return  # complete already: a previous attempt stopped after its last byte
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = opener(settings).open(request(url, headers=headers), timeout=settings.connect_timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part already holds the whole file (or is not its beginning)
            total = _int((exc.headers.get("Content-Range") or "").rpartition("/")[2])
            if total == offset or (total is None and expect_size == offset):
                return
            part.write_bytes(b"")
            raise TransferError("the server refused the resume range; starting over", retry=True) from None
        raise
    with resp:
        mode = "ab"
        if offset and resp.status == 200:
            if note is not None:
                note("the server does not resume downloads (no Range support); starting over from byte 0")
            offset, mode = 0, "wb"
        elif resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range") or "")
            if m is None or int(m[1]) != offset:
                part.write_bytes(b"")
                raise TransferError("the server answered another range than asked; starting over", retry=True)
        length = _int(resp.headers.get("Content-Length"))
        total = offset + length if length is not None else expect_size
        if expect_size is not None and total is not None and total != expect_size:
            raise TransferError(f"the server's file is {total} bytes, expected {expect_size}", retry=False,
                                mismatch=True)
        done = offset
        with open(part, mode) as fh:
            while True:
                chunk = resp.read1(settings.chunk_bytes)  # what arrived: steady progress, and on disk
                if not chunk:
                    break
                fh.write(chunk)
                done += len(chunk)
                if total is not None and done > total:
                    raise TransferError(f"the server sent more than the {total} bytes announced", retry=False)
                if on_bytes is not None:
                    on_bytes(done, total)
        if total is not None and done < total:
            # http.client returns b"" at a closed socket instead of raising IncompleteRead
            raise TransferError(f"the connection dropped at byte {done} of {total}", retry=True)


def fetch_url(url: str, part: Path, settings: NetSettings, *, expect_size: int | None = None,
              on_bytes: BytesCallback | None = None, note: NoteCallback | None = None,
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Complete ``part`` (which may hold a beginning of the file) from ``url``; returns its size.
    Raises TransferError when the retries run out or the failure is not worth retrying; ``part``
    then holds whatever arrived, for a later resume."""
    with_retries(lambda: _attempt(url, part, settings, expect_size, on_bytes, note), settings, note, sleep)
    return part.stat().st_size
