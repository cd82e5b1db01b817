"""Read PyTorch weights files (.pth/.th/.ckpt) into numpy arrays without torch, running no code.

``torch.save`` pickles the object and stores each tensor's storage beside the pickle. Two
layouts are read here:

- the zip layout (torch >= 1.6, ``<name>/data.pkl`` + ``<name>/data/<key>`` + ``byteorder``);
- the legacy layout (torch < 1.6, e.g. the umxhq weights of 2019): four pickles in a row
  (magic number, protocol version, system info, the object), a pickled list of storage keys,
  then each storage as an int64 element count and its raw bytes.

(The tar layout of torch < 0.4 is not read.) The pickle is read by a restricted unpickler:
``find_class`` answers only the exact (module, name) pairs a state dict needs (an
``OrderedDict``, the tensor rebuild functions, the typed storage classes), each with a stand-in
of ours, never the real object, and no module is ever imported. Anything else, e.g. a
``__reduce__`` that names ``os.system``, is refused with a one-line ``CheckpointError`` before
it is called. Adapters whose files need more (a publisher's class) pass ``extra_globals``:
stand-ins they define, under the exact names. Tensors come back as numpy arrays (bfloat16 as
float32); each one's view of its storage is bounds-checked before it is copied out.
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stemsplit.errors import CheckpointError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    """Stand-in for ``torch.<Name>Storage``: the element type of a storage (not callable)."""

    def __init__(self, name: str, dtype: str):
        self.name, self.dtype = name, np.dtype(dtype)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


_STORAGES = {name: _StorageType(name, dtype) for name, dtype in (
    ("FloatStorage", "float32"), ("DoubleStorage", "float64"), ("HalfStorage", "float16"),
    ("BFloat16Storage", "uint16"),  # raw bits; widened to float32 when a tensor is read
    ("LongStorage", "int64"), ("IntStorage", "int32"), ("ShortStorage", "int16"),
    ("CharStorage", "int8"), ("ByteStorage", "uint8"), ("BoolStorage", "bool"))}


class _Storage:
    """One storage named by the pickle; its array is attached once the file's data is read."""

    def __init__(self, kind: _StorageType, key: str, numel: int):
        self.kind, self.key, self.numel = kind, key, numel
        self.array: np.ndarray | None = None


class _View:
    """A legacy storage that is a slice of another (torch < 1.0 views)."""

    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel
        self.kind = root.kind


class _TensorRef:
    """What a rebuild function returns: a tensor's place in its storage, read out after loading."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): kind for name, kind in _STORAGES.items()},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, where: str, allowed: Mapping[tuple[str, str], Any]):
        super().__init__(file)
        self.where, self.allowed = where, allowed
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise CheckpointError(f"{self.where}: refused: it asks to load {module}.{name}, which a weights file "
                                  "does not need (it may run code); use the publisher's original file")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)
                and pid[4] >= 0):
            raise CheckpointError(f"{self.where}: refused: an unexpected persistent id {str(pid)[:60]!r}")
        kind, key, numel = pid[1], pid[2], pid[4]
        storage = self.storages.setdefault(key, _Storage(kind, key, numel))
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return storage
        if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
            raise CheckpointError(f"{self.where}: refused: a malformed storage view {str(view)[:60]!r}")
        return _View(storage, view[1], view[2])


def _unpickle(data: bytes, where: str, allowed: Mapping[tuple[str, str], Any]):
    import io

    unpickler = _Unpickler(io.BytesIO(data), where, allowed)
    return unpickler.load(), unpickler.storages


# --- the two layouts ---------------------------------------------------------------------------


def _read_zip(path: Path, where: str, allowed, data: bool = True) -> Any:
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{where} is a zip file but not a PyTorch weights file (no single data.pkl); "
                                  "re-download it")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(zf.namelist())
        order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        obj, storages = _unpickle(zf.read(pickles[0]), where, allowed)
        for key, storage in storages.items() if data else ():
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise CheckpointError(f"{where}: its storage {key!r} is missing; the file is damaged, re-download it")
            storage.array = _array(zf.read(entry), storage, order, where)
    return obj


def _read_legacy(path: Path, where: str, allowed, data: bool = True) -> Any:
    with open(path, "rb") as fh:
        header = [_Unpickler(fh, where, {}).load() for _ in range(3)]
        if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL or not isinstance(header[2], dict):
            raise CheckpointError(f"{where}: not a PyTorch weights file (wrong magic number); re-download it")
        order = "little" if header[2].get("little_endian", True) else "big"
        unpickler = _Unpickler(fh, where, allowed)
        obj = unpickler.load()
        if not data:
            return obj
        keys = _Unpickler(fh, where, {}).load()
        if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
            raise CheckpointError(f"{where}: its storage list does not match its tensors; re-download it")
        for key in keys:
            storage = unpickler.storages[key]
            (count,) = struct.unpack("<q" if order == "little" else ">q", fh.read(8))
            size = count * storage.kind.dtype.itemsize
            if count != storage.numel:
                raise CheckpointError(f"{where}: storage {key!r} holds {count} values, its tensors say "
                                      f"{storage.numel}; the file is damaged, re-download it")
            storage.array = _array(fh.read(size), storage, order, where)
    return obj


def _array(raw: bytes, storage: _Storage, order: str, where: str) -> np.ndarray:
    dtype = storage.kind.dtype.newbyteorder("<" if order == "little" else ">")
    if len(raw) < storage.numel * dtype.itemsize:
        raise CheckpointError(f"{where}: storage {storage.key!r} is truncated; re-download the file")
    return np.frombuffer(raw, dtype=dtype, count=storage.numel)


# --- tensors out -------------------------------------------------------------------------------


def _tensor(ref: _TensorRef, where: str) -> np.ndarray:
    storage, offset = ref.storage, ref.offset
    if isinstance(storage, _View):
        offset = offset + storage.offset if isinstance(offset, int) else offset
        numel, base = storage.numel, storage.root
        if not (0 <= storage.offset and storage.offset + numel <= base.numel):
            raise CheckpointError(f"{where}: a storage view lies outside its storage; the file is damaged")
    elif isinstance(storage, _Storage):
        base = storage
    else:
        raise CheckpointError(f"{where}: a tensor without a storage; the file is damaged")
    size, stride = tuple(ref.size), tuple(ref.stride)
    if not (isinstance(offset, int) and offset >= 0 and len(size) == len(stride)
            and all(isinstance(v, int) and v >= 0 for v in size + stride)):
        raise CheckpointError(f"{where}: a tensor with a malformed shape {size} / {stride}; the file is damaged")
    flat = base.array
    if any(s == 0 for s in size):
        out = np.zeros(size, flat.dtype)
    else:
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= flat.size:
            raise CheckpointError(f"{where}: a tensor reads past the end of its storage; the file is damaged")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[st * item for st in stride],
                                               writeable=False)
        out = np.array(view, dtype=flat.dtype.newbyteorder("="), copy=True)
    if base.kind.name == "BFloat16Storage":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _shape(ref: _TensorRef, where: str) -> tuple[int, ...]:
    size = tuple(ref.size) if isinstance(ref.size, (tuple, list)) else None
    if size is None or not all(isinstance(v, int) and v >= 0 for v in size):
        raise CheckpointError(f"{where}: a tensor with a malformed shape; the file is damaged")
    return size


def _resolve(obj: Any, where: str, depth: int = 0, read=_tensor) -> Any:
    """Every tensor reference in nested dicts, lists and tuples -> ``read(ref, where)``: its numpy
    array (or its shape)."""
    if depth > 64:
        raise CheckpointError(f"{where}: nested too deeply for a weights file")
    if isinstance(obj, _TensorRef):
        return read(obj, where)
    if isinstance(obj, dict):
        return {k: _resolve(v, where, depth + 1, read) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, where, depth + 1, read) for v in obj)
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return obj
    return obj  # an adapter's stand-in object (extra_globals): the adapter reads it


def read_torch_file(path: str | Path, extra_globals: Mapping[tuple[str, str], Any] | None = None,
                    shapes_only: bool = False) -> Any:
    """The object ``torch.save`` wrote to ``path``, with every tensor as a numpy array.

    Only the globals of ``ALLOWED_GLOBALS`` (and ``extra_globals``: stand-ins keyed by the exact
    (module, name) the file names) may appear; anything else is a one-line CheckpointError.
    ``shapes_only``: each tensor as its shape (a tuple), read from the pickle alone: the
    tensors' data is not read, so this is cheap on a large file.
    """
    path = Path(path).expanduser()
    where = str(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}" if not path.exists() else
                              f"{path} is a folder, not a weights file")
    allowed = {**ALLOWED_GLOBALS, **(extra_globals or {})}
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path, where, allowed, data=not shapes_only)
        else:
            obj = _read_legacy(path, where, allowed, data=not shapes_only)
        return _resolve(obj, where, read=_shape if shapes_only else _tensor)
    except CheckpointError:
        raise
    except Exception as exc:  # a damaged or foreign file can fail anywhere in unpickling
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{where} is not a readable PyTorch weights file ({reason[:120]}); "
                              "re-download it") from None


def read_state_dict(path: str | Path, extra_globals: Mapping[tuple[str, str], Any] | None = None,
                    shapes_only: bool = False) -> dict[str, Any]:
    """A state dict saved with ``torch.save(model.state_dict(), path)``: name -> numpy array
    (or, ``shapes_only``, name -> shape tuple).

    A checkpoint that wraps it as ``{"state_dict": ...}`` is unwrapped."""
    obj = read_torch_file(path, extra_globals, shapes_only)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    kind = tuple if shapes_only else np.ndarray
    if not (isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, kind)
                                                   for k, v in obj.items())):
        raise CheckpointError(f"{path}: holds no state dict (a mapping of names to tensors); "
                              "pass the model's weights file")
    return obj
