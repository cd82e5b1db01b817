"""The catalogue of public pretrained models: package data (``catalogue.json``) read into dataclasses.

One entry per model: what it is (title, format adapter, stems, rate), under which licence, how
big its download is, the score its publisher PUBLISHED for it (never a score we measured), the
files it needs with their sources in order of preference, and the ``options`` passed on to its
format adapter. Every key is checked: an unknown or mistyped key is an error, not a silent default.

``STEMSPLIT_CATALOGUE=FILE`` names a catalogue of the same schema whose entries replace the shipped
ones of the same name and add new names: a mirror (an organisation's own server holding the
weights) or a model of one's own, without editing the installed package.

Sources of a file:
  * ``huggingface``: ``repo``, ``path``, ``revision`` (default ``main``); verified against the
    SHA-256 that the hub serves for it (``X-Linked-Etag`` of its resolve URL), and against a
    ``sha256`` pinned here when there is one.
  * ``url``: a plain URL, verified against a full ``sha256`` or against the torch.hub-style
    ``sha256_prefix`` that the publisher put in the file name (``<name>-<hex>.pth``).
A file may instead be ``inline``: text that stemsplit writes itself (a Demucs bag YAML), so a file
that nothing could verify is never downloaded.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from stemsplit.hub.errors import CatalogueError, UnknownModelError

SHIPPED_FILE = Path(__file__).resolve().parent / "catalogue.json"
OVERRIDE_ENV = "STEMSPLIT_CATALOGUE"
SCHEMA_VERSION = 1

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")  # no path separators, not hidden
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX_PREFIX = re.compile(r"^[0-9a-f]{8,63}$")


# --- the schema --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Licence:
    name: str  # SPDX-style identifier, e.g. "MIT", "CC-BY-NC-SA-4.0"
    url: str
    note: str = ""  # e.g. "non-commercial use only"


@dataclass(frozen=True)
class PublishedScore:
    """A score as its publisher published it (we did not measure it)."""

    metric: str  # e.g. "SDR (museval v4, median over frames, median over tracks)"
    dataset: str  # e.g. "MUSDB18 test set (50 tracks)"
    mean: float | None  # over the stems, in dB
    per_stem: dict[str, float]  # stem -> dB; may be empty when only the mean was published
    citation: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class HuggingFaceSource:
    repo: str  # "owner/name"
    path: str  # the file's path in the repository
    revision: str = "main"
    sha256: str | None = None  # optional pin; the hub's own sha256 is always checked too
    size: int | None = None
    kind: str = field(default="huggingface", init=False)

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class UrlSource:
    url: str
    sha256: str | None = None
    sha256_prefix: str | None = None  # torch.hub style: the hex after the last '-' of the file name
    size: int | None = None
    file: str | None = None  # local name; default: the URL path's last part
    kind: str = field(default="url", init=False)

    @property
    def file_name(self) -> str:
        return self.file or PurePosixPath(urlparse(self.url).path).name


Source = HuggingFaceSource | UrlSource


@dataclass(frozen=True)
class ModelFile:
    """One file a model needs: a role (what the adapter calls it) and where to get it."""

    role: str
    sources: tuple[Source, ...] = ()  # in order of preference
    inline_name: str | None = None  # inline files: written by stemsplit from ``inline_text``
    inline_text: str | None = None

    @property
    def is_inline(self) -> bool:
        return self.inline_text is not None

    def local_names(self) -> list[str]:
        """The names this file may have in the cache, most preferred first."""
        if self.is_inline:
            return [self.inline_name]
        return list(dict.fromkeys(s.file_name for s in self.sources))


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    title: str
    format: str  # the stemsplit.formats adapter that reads the files, e.g. "openunmix", "demucs"
    licence: Licence
    stems: tuple[str, ...]  # in the model's output order
    sample_rate: int
    download_bytes: int  # total download, approximate where the publisher gives no sizes
    published_score: PublishedScore | None
    files: tuple[ModelFile, ...]
    options: dict[str, Any]  # passed unchanged to the format adapter
    description: str = ""

    def file(self, role: str) -> ModelFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(role)


# --- reading -----------------------------------------------------------------------------------

def _take(obj: Any, where: str, required: dict[str, type | tuple], optional: dict[str, type | tuple]) -> dict:
    """``obj``'s keys, each checked against its type; unknown and missing keys are errors."""
    if not isinstance(obj, dict):
        raise CatalogueError(f"{where}: expected an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise CatalogueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join([*required, *optional])})")
    missing = [k for k in required if k not in obj]
    if missing:
        raise CatalogueError(f"{where}: missing key {missing[0]!r}")
    out = {}
    for key, value in obj.items():
        want = required.get(key) or optional[key]
        ok = isinstance(value, want) and not (isinstance(value, bool) and bool not in _as_tuple(want))
        if not ok and value is None and type(None) in _as_tuple(want):
            ok = True
        if not ok:
            raise CatalogueError(f"{where}.{key}: expected {_type_name(want)}, got {type(value).__name__}")
        out[key] = value
    return out


def _as_tuple(t: type | tuple) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def _type_name(t: type | tuple) -> str:
    return " or ".join("null" if x is type(None) else x.__name__ for x in _as_tuple(t))


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise CatalogueError(message)


def _sha256(value: str | None, where: str) -> str | None:
    _check(value is None or bool(_HEX64.match(value)), f"{where}: sha256 must be 64 lowercase hex digits")
    return value


def _size(value: int | None, where: str) -> int | None:
    _check(value is None or value > 0, f"{where}: size must be a positive number of bytes")
    return value


def _source(obj: Any, where: str) -> Source:
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == "huggingface":
        d = _take(obj, where, {"kind": str, "repo": str, "path": str},
                  {"revision": str, "sha256": (str, type(None)), "size": (int, type(None))})
        _check(re.match(r"^[\w.-]+/[\w.-]+$", d["repo"]) is not None, f"{where}.repo: expected 'owner/name'")
        _check(bool(d["path"]) and ".." not in d["path"].split("/") and not d["path"].startswith("/"),
               f"{where}.path: expected a relative path inside the repository")
        src = HuggingFaceSource(repo=d["repo"], path=d["path"], revision=d.get("revision", "main"),
                                sha256=_sha256(d.get("sha256"), where), size=_size(d.get("size"), where))
    elif kind == "url":
        d = _take(obj, where, {"kind": str, "url": str},
                  {"sha256": (str, type(None)), "sha256_prefix": (str, type(None)), "size": (int, type(None)),
                   "file": (str, type(None))})
        _check(urlparse(d["url"]).scheme in ("http", "https"), f"{where}.url: expected an http(s) URL")
        prefix = d.get("sha256_prefix")
        _check(prefix is None or bool(_HEX_PREFIX.match(prefix)),
               f"{where}: sha256_prefix must be 8 to 63 lowercase hex digits")
        _check(d.get("sha256") is not None or prefix is not None,
               f"{where}: a url source needs sha256 or sha256_prefix (an unverified download is refused)")
        src = UrlSource(url=d["url"], sha256=_sha256(d.get("sha256"), where), sha256_prefix=prefix,
                        size=_size(d.get("size"), where), file=d.get("file"))
        if prefix is not None and "-" in PurePosixPath(src.file_name).stem:
            # the torch.hub convention: the publisher's file name carries the hash's first hex digits
            tail = PurePosixPath(src.file_name).stem.rsplit("-", 1)[1]
            _check(tail == prefix or not re.match(r"^[0-9a-f]+$", tail),
                   f"{where}: sha256_prefix {prefix} disagrees with the file name's {tail}")
        if src.sha256 and prefix:
            _check(src.sha256.startswith(prefix), f"{where}: sha256 does not start with sha256_prefix")
    else:
        raise CatalogueError(f"{where}.kind: expected 'huggingface' or 'url', got {kind!r}")
    _check(bool(_FILE_RE.match(src.file_name)), f"{where}: unusable local file name {src.file_name!r}")
    return src


def _model_file(obj: Any, where: str) -> ModelFile:
    d = _take(obj, where, {"role": str}, {"sources": list, "inline": dict})
    _check(("sources" in d) != ("inline" in d), f"{where}: give either 'sources' or 'inline'")
    if "inline" in d:
        i = _take(d["inline"], f"{where}.inline", {"name": str, "text": str}, {})
        _check(bool(_FILE_RE.match(i["name"])), f"{where}.inline.name: unusable file name {i['name']!r}")
        return ModelFile(role=d["role"], inline_name=i["name"], inline_text=i["text"])
    _check(len(d["sources"]) > 0, f"{where}.sources: at least one source is needed")
    sources = tuple(_source(s, f"{where}.sources[{i}]") for i, s in enumerate(d["sources"]))
    return ModelFile(role=d["role"], sources=sources)


def _score(obj: Any, where: str) -> PublishedScore | None:
    if obj is None:
        return None
    d = _take(obj, where, {"metric": str, "dataset": str, "mean": (float, int, type(None)), "per_stem": dict,
                           "citation": str, "url": str}, {"note": str})
    for stem, value in d["per_stem"].items():
        _check(isinstance(value, (int, float)) and not isinstance(value, bool),
               f"{where}.per_stem.{stem}: expected a number")
    mean = None if d["mean"] is None else float(d["mean"])
    return PublishedScore(metric=d["metric"], dataset=d["dataset"], mean=mean,
                          per_stem={k: float(v) for k, v in d["per_stem"].items()},
                          citation=d["citation"], url=d["url"], note=d.get("note", ""))


def _entry(obj: Any, where: str) -> CatalogueEntry:
    d = _take(obj, where, {"name": str, "title": str, "format": str, "licence": dict, "stems": list,
                           "sample_rate": int, "download_bytes": int, "published_score": (dict, type(None)),
                           "files": list, "options": dict}, {"description": str})
    name = d["name"]
    _check(bool(_NAME_RE.match(name)), f"{where}.name: {name!r} is not a usable model name ([a-z0-9_.-])")
    where = f"{where} ({name})"
    _check(bool(re.match(r"^[a-z][a-z0-9_]*$", d["format"])), f"{where}.format: expected an adapter name")
    lic = _take(d["licence"], f"{where}.licence", {"name": str, "url": str}, {"note": str})
    _check(bool(d["stems"]) and all(isinstance(s, str) and s for s in d["stems"]),
           f"{where}.stems: expected a list of stem names")
    _check(len(set(d["stems"])) == len(d["stems"]), f"{where}.stems: a stem is listed twice")
    _check(d["sample_rate"] > 0 and d["download_bytes"] > 0, f"{where}: sample_rate and download_bytes must be > 0")
    _check(bool(d["files"]), f"{where}.files: at least one file is needed")
    files = tuple(_model_file(f, f"{where}.files[{i}]") for i, f in enumerate(d["files"]))
    roles = [f.role for f in files]
    _check(len(set(roles)) == len(roles), f"{where}.files: a role is listed twice")
    names = [n for f in files for n in f.local_names()]
    _check(len(set(names)) == len(names), f"{where}.files: two files would share one name in the cache")
    return CatalogueEntry(name=name, title=d["title"], format=d["format"], licence=Licence(**lic),
                          stems=tuple(d["stems"]), sample_rate=d["sample_rate"], download_bytes=d["download_bytes"],
                          published_score=_score(d["published_score"], f"{where}.published_score"),
                          files=files, options=d["options"], description=d.get("description", ""))


def parse(data: Any, where: str = "catalogue") -> dict[str, CatalogueEntry]:
    """A catalogue's JSON value -> {name: entry}; a CatalogueError names the first bad key."""
    d = _take(data, where, {"schema": int, "models": list}, {"comment": str})
    _check(d["schema"] == SCHEMA_VERSION, f"{where}.schema: version {d['schema']} is not {SCHEMA_VERSION}")
    out: dict[str, CatalogueEntry] = {}
    for i, obj in enumerate(d["models"]):
        entry = _entry(obj, f"{where}.models[{i}]")
        _check(entry.name not in out, f"{where}: model {entry.name!r} is listed twice")
        out[entry.name] = entry
    return out


def read(path: str | Path) -> dict[str, CatalogueEntry]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"cannot read the catalogue {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
    return parse(data, where=str(path))


def load() -> dict[str, CatalogueEntry]:
    """The shipped catalogue, with the entries of ``$STEMSPLIT_CATALOGUE`` (if set) on top."""
    entries = read(SHIPPED_FILE)
    override = os.environ.get(OVERRIDE_ENV, "").strip()
    if override:
        entries.update(read(override))
    return entries


def names() -> list[str]:
    """The catalogue's model names, in its order."""
    return list(load())


def find(name: str) -> CatalogueEntry | None:
    """The entry called ``name``, or None (a name that is not in the catalogue may be a path)."""
    return load().get(name)


def lookup(name: str, entries: dict[str, CatalogueEntry] | None = None) -> CatalogueEntry:
    entries = load() if entries is None else entries
    try:
        return entries[name]
    except KeyError:
        known = ", ".join(sorted(entries)) or "none"
        raise UnknownModelError(f"unknown model {name!r}: the catalogue has {known}") from None
