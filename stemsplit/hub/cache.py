"""Where downloaded models live: ``<cache>/<model name>/<file>``, and their derived files.

The cache folder is ``$STEMSPLIT_CACHE``, else ``$XDG_CACHE_HOME/stemsplit``, else
``~/.cache/stemsplit``. Its layout is the same wherever it is, so ``stemsplit models pull NAME
--to DIR`` on a machine with a network, a copy of DIR, and ``STEMSPLIT_CACHE=DIR`` on an
air-gapped server find the same files. A file is under its final name only once its checksum
was verified (stemsplit.hub.fetch renames it there); nothing else is ever written to that name.

Beside each downloaded file, ``.<file>.sha256`` records its SHA-256 (with its size and mtime), so
a derived file's key never needs the whole file hashed again. Derived files (e.g. an ONNX graph
converted from a model's weights) go to ``<cache>/<model>/derived/<kind>-<key><suffix>``, keyed
by the source files' SHA-256 and the converter's version, and are written atomically too.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from stemsplit.atomic import mkstemp_beside, write_json_atomic
from stemsplit.hub.catalogue import CatalogueEntry
from stemsplit.hub.errors import CacheError
from stemsplit.hub.lock import file_lock

CACHE_ENV = "STEMSPLIT_CACHE"
DERIVED = "derived"
_READ_BYTES = 1 << 20


def cache_root(root: str | Path | None = None) -> Path:
    """``root`` when given, else the folder the environment names (see the module docstring)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):  # the XDG spec ignores a relative value
        return Path(xdg) / "stemsplit"
    return Path.home() / ".cache" / "stemsplit"


def model_dir(entry: CatalogueEntry | str, root: str | Path | None = None) -> Path:
    name = entry if isinstance(entry, str) else entry.name
    return cache_root(root) / name


def paths(entry: CatalogueEntry, root: str | Path | None = None) -> dict[str, Path]:
    """{role: path} of the entry's files that are in the cache (the most preferred name first)."""
    folder = model_dir(entry, root)
    found = {}
    for f in entry.files:
        for name in f.local_names():
            if (folder / name).is_file():
                found[f.role] = folder / name
                break
    return found


def is_cached(entry: CatalogueEntry, root: str | Path | None = None) -> bool:
    """True when using the entry needs no network: every downloaded file is in the cache
    (inline files are written from the catalogue itself)."""
    have = paths(entry, root)
    return all(f.role in have for f in entry.files if not f.is_inline)


def writable_dir(folder: Path) -> Path:
    """Create ``folder`` (and its parents) and prove it writable, or raise one line naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # tempfile, not atomic.mkstemp_beside: its sweep would delete a dead pull's resumable part
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CacheError(f"cannot write to the model cache folder {folder} ({reason}); set {CACHE_ENV} to a "
                         f"writable folder, or pull the model there first: stemsplit models pull NAME --to DIR"
                         ) from None
    return folder


# --- SHA-256 records -------------------------------------------------------------------------

def record_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")


def write_record(path: Path, sha256: str, source: str) -> None:
    """Remember a verified file's SHA-256 (a cache that cannot take it just recomputes later)."""
    st = path.stat()
    try:
        write_json_atomic(record_path(path), {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                              "source": source})
    except OSError:
        pass


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_READ_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a cached file: from its record when the record still describes the file
    (same size and mtime), else computed (and recorded when the cache is writable)."""
    path = Path(path)
    st = path.stat()
    try:
        rec = json.loads(record_path(path).read_text())
        if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            return str(rec["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_of(path)
    write_record(path, digest, "computed")
    return digest


# --- derived files ---------------------------------------------------------------------------

def derived_path(model: str, kind: str, inputs: Mapping[str, str | Path], converter_version: str,
                 suffix: str, root: str | Path | None = None) -> Path:
    """Where the ``kind`` form (e.g. "onnx") of ``model`` built from ``inputs`` ({role: path}) by a
    converter of ``converter_version`` lives. A new converter version or different source
    files give a new path, so a stale conversion is never picked up."""
    key = {"kind": kind, "converter": converter_version,
           "inputs": {role: file_digest(p) for role, p in sorted(inputs.items())}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_root(root) / model / DERIVED / f"{kind}-{digest}{suffix}"


def derived(model: str, inputs: Mapping[str, str | Path], kind: str, converter_version: str,
            build: Callable[[Path], None], *, suffix: str | None = None, root: str | Path | None = None) -> Path:
    """The ``kind`` form of ``model``'s files ``inputs``, built by ``build(path)`` the first time and
    read from the cache afterwards. One process builds while another that wants it waits."""
    path = derived_path(model, kind, inputs, converter_version, suffix or f".{kind}", root)
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot write the converted model to {path.parent} ({exc.strerror or exc}); "
                         f"set {CACHE_ENV} to a writable folder") from None
    with file_lock(path.parent / f".{path.name}.lock"):
        if not path.is_file():  # not built by another process meanwhile
            with derived_output(path) as tmp:
                build(tmp)
    return path


@contextmanager
def derived_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a converter to write; on a clean exit it is
    renamed to ``path``, on any error it is removed. Two processes converting at once both
    produce a complete file and the last rename wins."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = mkstemp_beside(path, suffix=path.suffix or ".tmp")
    except OSError as exc:
        raise CacheError(f"cannot write the converted model to {path.parent} ({exc.strerror or exc}); "
                         f"set {CACHE_ENV} to a writable folder") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
