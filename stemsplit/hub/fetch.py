"""Bring a catalogue entry's files into the cache, verified: ``ensure(entry) -> {role: path}``.

For each file not in the cache yet, under an exclusive lock per file (a second process waits,
then finds the file): its sources are tried in the catalogue's order, the first that works
wins. A source's bytes stream into a uniquely named temporary file in the model's cache folder
(``.<file>.stemsplit-<pid>-<random>.part``); only when its SHA-256 (full, or the publisher's
prefix) and size are right is it renamed to its final name. So the final name never holds a
half or an unverified file.

What stays behind after a failure: nothing after a checksum mismatch or an offline attempt.
After a transfer that broke off (the connection dropped, the retries ran out, Ctrl-C) the
bytes that arrived stay as ``.<file>.partial``; the next pull continues it with an HTTP Range
request (and starts over if the server cannot resume). A process killed outright leaves its
temporary file; the next pull of that file takes it over the same way, under the lock.

Hugging Face sources are verified against the SHA-256 the hub serves for the file: a HEAD
request to ``$HF_ENDPOINT/<repo>/resolve/<revision>/<path>`` (endpoint default
https://huggingface.co, as huggingface_hub reads it) answers with the LFS object's sha256 in
``X-Linked-Etag`` and its size in ``X-Linked-Size``. A file the hub gives no sha256 for, and that
the catalogue pins none for, is refused. This module prints nothing: progress goes to a callback.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin

from stemsplit.atomic import FILE_MODE, TEMP_RE, TEMP_TAG, _writer_alive, write_text_atomic
from stemsplit.hub.cache import model_dir, paths, sha256_of, writable_dir, write_record
from stemsplit.hub.catalogue import CatalogueEntry, HuggingFaceSource, ModelFile, Source
from stemsplit.hub.errors import AIR_GAP_HINT, CacheError, ChecksumError, DownloadError
from stemsplit.hub.http import NetSettings, TransferError, opener, request
from stemsplit.hub.lock import file_lock
from stemsplit.hub.transfer import fetch_url, with_retries

HF_ENDPOINT = "https://huggingface.co"
_HEX64 = "0123456789abcdef"


@dataclass(frozen=True)
class FetchEvent:
    """What a pull is doing, for a progress display. ``kind``: "start" (a download begins, or
    resumes at ``done`` bytes), "bytes", "retry", "wait" (another process holds the file's lock),
    "fallback" (a source failed, the next is tried), "done" (verified and in place)."""

    model: str
    file: str
    kind: str
    done: int = 0
    total: int | None = None
    url: str = ""
    message: str = ""


ProgressCallback = Callable[[str, int, "int | None"], None]  # (file name, bytes done, bytes in all or None)
EventCallback = Callable[[FetchEvent], None]


class _SourceFailed(Exception):
    def __init__(self, url: str, reason: str, offline: bool = False, checksum: bool = False):
        super().__init__(reason)
        self.url, self.reason, self.offline, self.checksum = url, reason, offline, checksum


@dataclass(frozen=True)
class _Expected:
    sha256: str | None
    prefix: str | None
    size: int | None

    def check(self, path: Path) -> tuple[str | None, str]:
        """(None, sha256) when ``path`` is the expected file, else (what is wrong with it, "")."""
        size = path.stat().st_size
        if self.size is not None and size != self.size:
            return f"size {size} bytes, expected {self.size}", ""
        digest = sha256_of(path)
        want = self.sha256 or self.prefix
        if want and not digest.startswith(want):
            return f"sha256 {digest[:16]}..., expected {want[:16]}...", ""
        return None, digest


# --- sources -----------------------------------------------------------------------------------

def _clean_etag(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    value = value[2:] if value.startswith("W/") else value
    value = value.strip('"').lower()
    return value if len(value) == 64 and all(c in _HEX64 for c in value) else None


def hf_resolve_url(src: HuggingFaceSource) -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or HF_ENDPOINT
    return f"{endpoint}/{src.repo}/resolve/{quote(src.revision, safe='')}/{quote(src.path)}"


def _hf_checksum(url: str, settings: NetSettings, note) -> tuple[str | None, int | None]:
    """The sha256 and size that the hub serves for a resolve URL (HEAD, redirects read by hand)."""
    import urllib.error

    def head() -> tuple[str | None, int | None]:
        current = url
        for _ in range(6):  # a renamed repository answers a relative redirect to its new name first
            try:
                with opener(settings, follow_redirects=False).open(request(current, "HEAD"),
                                                                   timeout=settings.connect_timeout) as resp:
                    headers, status = resp.headers, resp.status
            except urllib.error.HTTPError as exc:
                if not 300 <= exc.code < 400:
                    raise
                headers, status = exc.headers, exc.code
            linked = _clean_etag(headers.get("X-Linked-Etag"))
            if linked:
                size = headers.get("X-Linked-Size")
                return linked, int(size) if size and size.isdigit() else None
            if 300 <= status < 400 and headers.get("Location"):
                current = urljoin(current, headers["Location"])
                continue
            return _clean_etag(headers.get("ETag")), None
        return None, None

    return with_retries(head, settings, note)


def _expected(src: Source, settings: NetSettings, note) -> tuple[str, _Expected]:
    """The URL to read and what its bytes must be."""
    if isinstance(src, HuggingFaceSource):
        url = hf_resolve_url(src)
        try:
            hub_sha, hub_size = _hf_checksum(url, settings, note)
        except TransferError as exc:
            raise _SourceFailed(url, exc.reason, offline=exc.offline) from None
        if src.sha256 and hub_sha and src.sha256 != hub_sha:
            raise _SourceFailed(url, f"the hub serves sha256 {hub_sha[:16]}..., the catalogue pins "
                                     f"{src.sha256[:16]}...", checksum=True)
        sha = src.sha256 or hub_sha
        if sha is None:
            raise _SourceFailed(url, "the hub served no sha256 for it and the catalogue pins none; "
                                     "an unverified file is refused", checksum=True)
        if src.size and hub_size and src.size != hub_size:
            raise _SourceFailed(url, f"the hub's file is {hub_size} bytes, the catalogue says {src.size}",
                                checksum=True)
        return url, _Expected(sha, None, src.size or hub_size)
    return src.url, _Expected(src.sha256, src.sha256_prefix, src.size)


# --- partial files -----------------------------------------------------------------------------

def partial_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def _new_part(final: Path) -> Path:
    """A fresh temporary file for ``final``, holding the bytes of the largest leftover partial
    (a ``.partial`` of a broken transfer, or the temporary file of a process that died).
    Called under the file's lock, so no live process writes any of them."""
    leftovers = [partial_path(final)] if partial_path(final).is_file() else []
    prefix = f".{final.name}.{TEMP_TAG}-"
    for entry in os.scandir(final.parent):
        m = TEMP_RE.match(entry.name)
        if m and entry.name.startswith(prefix) and entry.name.endswith(".part") and not _writer_alive(int(m["pid"])):
            leftovers.append(Path(entry.path))
    leftovers.sort(key=lambda p: p.stat().st_size, reverse=True)
    # tempfile, not atomic.mkstemp_beside: its sweep of dead writers' files would delete leftovers
    fd, name = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".part", dir=final.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    part = Path(name)
    if leftovers:
        os.replace(leftovers[0], part)
    for extra in leftovers[1:]:
        extra.unlink(missing_ok=True)
    return part


def _keep_or_drop(part: Path, final: Path, keep: bool) -> None:
    """After a failed attempt: keep what arrived as the resumable ``.partial``, or delete it."""
    try:
        if keep and part.stat().st_size > 0:
            os.replace(part, partial_path(final))
        else:
            part.unlink()
    except OSError:
        part.unlink(missing_ok=True)


# --- one file --------------------------------------------------------------------------------

def _from_source(entry: CatalogueEntry, src: Source, folder: Path, settings: NetSettings, emit) -> Path:
    final = folder / src.file_name
    source_url = hf_resolve_url(src) if isinstance(src, HuggingFaceSource) else src.url

    def note(message: str) -> None:
        emit(FetchEvent(entry.name, final.name, "retry", url=source_url, message=message))

    url, expected = _expected(src, settings, note)
    part = _new_part(final)
    keep = False
    try:
        for fresh_start in (False, True):
            done = part.stat().st_size
            emit(FetchEvent(entry.name, final.name, "start", done=done, total=expected.size, url=url))
            try:
                fetch_url(url, part, settings, expect_size=expected.size, note=note,
                          on_bytes=lambda n, total: emit(FetchEvent(entry.name, final.name, "bytes", n, total, url)))
            except TransferError as exc:
                keep = exc.retry  # broke off (dropped, timed out, 5xx): worth resuming later
                raise _SourceFailed(url, exc.reason, offline=exc.offline, checksum=exc.mismatch) from None
            problem, digest = expected.check(part)
            if problem is None:
                break
            if done == 0 or fresh_start:  # a resumed beginning may have been another file's: retry once
                raise _SourceFailed(url, f"checksum mismatch ({problem}); nothing was kept", checksum=True)
            part.write_bytes(b"")
        os.replace(part, final)
    except BaseException as exc:
        _keep_or_drop(part, final, keep or not isinstance(exc, Exception))  # Ctrl-C, SIGTERM: resumable
        raise
    write_record(final, digest, url)
    emit(FetchEvent(entry.name, final.name, "done", final.stat().st_size, final.stat().st_size, url))
    return final


def _failure(entry: CatalogueEntry, f: ModelFile, failures: list[_SourceFailed]) -> DownloadError:
    tried = "; ".join(f"{x.url} ({x.reason})" for x in failures)
    what = f"could not download {entry.name}'s {f.local_names()[0]}: tried {tried}"
    if all(x.checksum for x in failures):
        return ChecksumError(f"{what}. The server's file is not the one the catalogue names: try again later, "
                             f"and report it if it persists")
    hint = AIR_GAP_HINT.format(name=entry.name)
    return DownloadError(f"{what}. Check the network (and http_proxy/https_proxy), or {hint}")


def _ensure_file(entry: CatalogueEntry, f: ModelFile, folder: Path, settings: NetSettings, emit) -> Path:
    def present() -> Path | None:
        for name in f.local_names():
            if (folder / name).is_file():
                return folder / name
        return None

    if (found := present()) is not None:
        return found
    lock = folder / f".{f.local_names()[0]}.lock"
    waiting = FetchEvent(entry.name, f.local_names()[0], "wait",
                         message="waiting for another stemsplit process that downloads it")
    with file_lock(lock, on_wait=lambda: emit(waiting)):
        if (found := present()) is not None:  # the other process finished it meanwhile
            return found
        failures: list[_SourceFailed] = []
        for i, src in enumerate(f.sources):
            try:
                return _from_source(entry, src, folder, settings, emit)
            except _SourceFailed as exc:
                failures.append(exc)
                if i + 1 < len(f.sources):
                    emit(FetchEvent(entry.name, src.file_name, "fallback", url=exc.url,
                                    message=f"{exc.url} failed ({exc.reason}); trying the next source"))
        raise _failure(entry, f, failures)


def _ensure_inline(f: ModelFile, folder: Path) -> Path:
    path = folder / f.inline_name
    try:
        if not path.is_file() or path.read_text(encoding="utf-8") != f.inline_text:
            write_text_atomic(path, f.inline_text)
    except OSError:
        writable_dir(folder)  # raises the one-line CacheError naming the folder
        raise
    return path


def _emitter(progress: ProgressCallback | None, events: EventCallback | None) -> EventCallback:
    def emit(event: FetchEvent) -> None:
        if events is not None:
            events(event)
        if progress is not None and event.kind in ("start", "bytes", "done"):
            progress(event.file, event.done, event.total)

    return emit


def ensure(entry: CatalogueEntry, progress: ProgressCallback | None = None, *, events: EventCallback | None = None,
           root: str | Path | None = None, settings: NetSettings | None = None) -> dict[str, Path]:
    """{role: path} of every file of ``entry``, downloading and verifying what the cache lacks.
    A fully cached model needs no network and writes nothing (a read-only cache is fine).

    ``progress(file name, bytes done, bytes in all or None)`` follows the bytes; ``events`` gets
    every FetchEvent, including retries, fallbacks and waits for another process's lock."""
    settings = settings or NetSettings()
    emit = _emitter(progress, events)
    folder = model_dir(entry, root)
    have = paths(entry, root)
    if all(f.role in have for f in entry.files):
        return {f.role: have[f.role] for f in entry.files}
    existed = folder.is_dir()
    writable_dir(folder)
    try:
        # downloads first: a failed pull leaves no file at all, not even the inline ones
        got = {f.role: _ensure_file(entry, f, folder, settings, emit) for f in entry.files if not f.is_inline}
        got.update({f.role: _ensure_inline(f, folder) for f in entry.files if f.is_inline})
        return {f.role: got[f.role] for f in entry.files}
    except (DownloadError, CacheError, KeyboardInterrupt):
        if not existed:
            _remove_if_empty(folder)
        raise


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
