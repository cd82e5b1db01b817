"""A numpy reader of ``.safetensors`` files: no torch, no safetensors package, no code from the file.

Layout: 8 bytes little-endian header length N, N bytes of JSON header, then the raw data. The
header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
the data that follows the header), plus an optional "__metadata__" of string -> string. Data is
little-endian and C-ordered. Anything malformed is refused with one ``CheckpointError`` line.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemsplit.errors import CheckpointError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit: a larger "header" is not a safetensors file
# safetensors dtype -> little-endian numpy dtype; BF16 is read as its bits and widened to float32
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


@dataclass
class SafetensorsFile:
    """What one file holds: its tensors as numpy arrays (float16 stays float16) and its metadata."""

    tensors: dict[str, np.ndarray]
    metadata: dict[str, str]


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable .safetensors file ({why}); re-download it")


def read_header(path: str | Path) -> tuple[dict, dict[str, str], int]:
    """(tensor entries, metadata, data start) from the header alone: cheap, for recognising a file."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _refuse(path, "shorter than its 8-byte header length")
            n = int.from_bytes(head, "little")
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise _refuse(path, f"header length {n} does not fit the file's {size} bytes")
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise _refuse(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise _refuse(path, "its __metadata__ is not a mapping of strings")
    return header, metadata, 8 + n


def _check_entry(path: Path, name: str, entry, data_size: int) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(entry, dict):
        raise _refuse(path, f"tensor {name!r} has no description")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise _refuse(path, f"tensor {name!r} has the unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise _refuse(path, f"tensor {name!r} has the shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _refuse(path, f"tensor {name!r} has the data offsets {offsets!r}")
    begin, end = offsets
    expected = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
    if not 0 <= begin <= end <= data_size or end - begin != expected:
        raise _refuse(path, f"tensor {name!r} spans bytes {begin}..{end} of {data_size}, "
                            f"not the {expected} its shape needs (truncated?)")
    return dtype, tuple(shape), begin, end


def read_safetensors(path: str | Path) -> SafetensorsFile:
    """Every tensor of ``path`` as a numpy array, and the file's metadata."""
    path = Path(path)
    header, metadata, start = read_header(path)
    data_size = os.path.getsize(path) - start
    entries = {name: _check_entry(path, name, entry, data_size) for name, entry in header.items()}
    tensors: dict[str, np.ndarray] = {}
    with open(path, "rb") as fh:
        for name, (dtype, shape, begin, end) in sorted(entries.items(), key=lambda item: item[1][2]):
            fh.seek(start + begin)
            raw = fh.read(end - begin)
            if len(raw) != end - begin:
                raise _refuse(path, f"tensor {name!r} is cut short")
            array = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)
            if dtype == "BF16":  # the top 16 bits of a float32
                array = (array.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=True)
    return SafetensorsFile(tensors=tensors, metadata=metadata)
