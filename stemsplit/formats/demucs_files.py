"""Reading one of Demucs 4's model files without running or importing anything it names.

- ``<sig>.safetensors`` (Hugging Face; demucs/hf.py): read by the numpy reader; its metadata's
  ``klass`` must be one of ``KLASSES``, its ``args`` / ``kwargs`` are JSON (a fraction as
  {"_type": "fraction", ...}), and a ``structure`` is accepted only as a plain mapping of tensors.
- ``<sig>-<sha256 prefix>.th`` (legacy; demucs/states.py, tools/export.py): a torch pickle of
  {klass, args, kwargs, state (float16), training_args, metrics}, read by
  ``torch.load(weights_only=True)`` with stand-ins registered under the exact global names the
  published files use: the model class (stored, never constructed), ``fractions.Fraction`` (the
  training segment, e.g. 39/5) and the numpy scalars of the metrics. Any other global is refused.
  A signed name's SHA-256 prefix is checked, as the publisher's loader does.
"""
from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from stemsplit.errors import CheckpointError
from stemsplit.formats.safetensors import read_safetensors

KLASSES = {"demucs.htdemucs.HTDemucs"}
OLDER = {"demucs.hdemucs.HDemucs": "Hybrid Demucs v3 (hdemucs_mmi)", "demucs.demucs.Demucs": "Demucs v2 (mdx*)",
         "demucs.train.TorchHDemucsWrapper": "torchaudio's HDemucs"}
SIGNED = re.compile(r"(?P<sig>[0-9a-f]{8})-(?P<sha>[0-9a-f]{8})")


def _decode(value: Any) -> Any:
    """The publisher's JSON encoding of constructor arguments -> plain values (fractions as Fraction)."""
    if isinstance(value, dict):
        if value.get("_type") == "fraction":
            return Fraction(int(value["numerator"]), int(value["denominator"]))
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _flat_state(structure: Any, tensors: dict, where: Path) -> dict:
    """A safetensors ``structure`` that is just a mapping of names to tensors; anything else (nested or
    quantized states, classes to import) is refused."""
    items = structure.get("_dict") if isinstance(structure, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 and isinstance(i[1], dict)
                                              and set(i[1]) == {"_tensor"} for i in items):
        raise CheckpointError(f"{where}: its state is nested or quantized (a 'structure' beyond a plain "
                              "mapping of tensors), which stemsplit does not read; use an unquantized model")
    return {key: tensors[node["_tensor"]] for key, node in items}


def read_safetensors_model(path: Path) -> tuple[str, list, dict, dict]:
    """(klass, args, kwargs, state of numpy arrays) of one ``<sig>.safetensors``; nothing is imported."""
    st = read_safetensors(path)
    meta = st.metadata
    klass = meta.get("klass", "")
    _check_klass(klass, path)
    try:
        args, kwargs = _decode(json.loads(meta.get("args", "[]"))), _decode(json.loads(meta.get("kwargs", "{}")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: its args/kwargs metadata is not the publisher's JSON; re-download it") from None
    state = st.tensors
    if "structure" in meta:
        try:
            state = _flat_state(json.loads(meta["structure"]), st.tensors, path)
        except (json.JSONDecodeError, KeyError):
            raise CheckpointError(f"{path}: its 'structure' metadata is damaged; re-download it") from None
    return klass, args, kwargs, state


def _check_klass(klass: str, where: Path) -> None:
    if klass in KLASSES:
        return
    if klass in OLDER:
        raise CheckpointError(f"{where} holds {OLDER[klass]}, which stemsplit does not run; "
                              "use a Demucs v4 model of the catalogue (stemsplit separate --list-models)")
    raise CheckpointError(f"{where}: model class {klass[:80]!r} is not a Demucs model stemsplit runs "
                          f"(only {', '.join(sorted(KLASSES))}); nothing from it was loaded")


class _PublisherClass:
    """Stands in for a class the publisher pickles by reference: stored, never constructed."""

    def __new__(cls, *args, **kwargs):
        raise TypeError("a Demucs model file may name its model class, not call it")


def _stand_in(full_name: str) -> type:
    module, name = full_name.rsplit(".", 1)
    return type(name, (_PublisherClass,), {"__module__": module, "__qualname__": name, "full_name": full_name})


def _fraction(*args) -> Fraction:
    """``fractions.Fraction`` as a pickle rebuilds it: from (numerator, denominator) or one short string."""
    if len(args) == 2 and all(type(a) is int for a in args) or len(args) == 1 and type(args[0]) is str \
            and len(args[0]) < 64:
        return Fraction(*args)
    raise TypeError("not a fraction")


class _NumpyDType:
    """Stands in for ``numpy.dtype`` in a pickled metric: keeps the dtype's name, runs nothing."""

    def __init__(self, name, *_):
        self.name = str(name)

    def __setstate__(self, state) -> None:
        self.state = state


def _numpy_scalar(dtype: _NumpyDType, data=b"") -> float | int | bool:
    """``numpy.core.multiarray.scalar``: a number from its raw bytes; only plain numeric dtypes."""
    import numpy as np

    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes) or not re.fullmatch(r"[<>|=]?[biuf]\d{1,2}",
                                                                                          dtype.name):
        raise TypeError("only numeric numpy scalars")
    kind = np.dtype(dtype.name)
    if kind.itemsize != len(data):
        raise TypeError("only numeric numpy scalars")
    return np.frombuffer(data, dtype=kind)[0].item()


def _th_globals() -> list:
    classes = [(_stand_in(name), name) for name in (*KLASSES, *OLDER)]
    numpy = [(_NumpyDType, "numpy.dtype"), (_numpy_scalar, "numpy.core.multiarray.scalar"),
             (_numpy_scalar, "numpy._core.multiarray.scalar")]
    return [*classes, (_fraction, "fractions.Fraction"), *numpy]


def read_th_model(path: Path) -> tuple[str, list, dict, dict]:
    """(klass, args, kwargs, state of tensors) of one legacy ``.th`` package, read with
    ``torch.load(weights_only=True)``: globals outside the stand-ins are refused, none runs."""
    import torch

    try:
        with torch.serialization.safe_globals(_th_globals()):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a refused global, a damaged zip, a truncated pickle: one line, no traceback
        text = str(exc).strip()
        refused = re.search(r"GLOBAL (\S+)|unrecognized function (\S+)", text)
        why = (f"it refers to {next(g for g in refused.groups() if g)}, which no Demucs model file needs"
               if refused else (text.splitlines()[0][:120] if text else type(exc).__name__))
        raise CheckpointError(f"{path} was refused: {why}; nothing from it ran. Use the publisher's "
                              "file (re-download it)") from None
    if not isinstance(package, dict) or not {"klass", "kwargs", "state"} <= set(package):
        raise CheckpointError(f"{path} is a torch file but not a Demucs model package (no klass/kwargs/state)")
    klass = getattr(package["klass"], "full_name", repr(package["klass"]))
    _check_klass(klass, path)
    state = package["state"]
    if not isinstance(state, dict) or state.get("__quantized"):
        raise CheckpointError(f"{path} holds a quantized (diffq) model, which stemsplit does not read; "
                              "use an unquantized model")
    return klass, list(package.get("args") or []), dict(package["kwargs"]), dict(state)


def verify_signed_name(path: Path) -> None:
    """A ``<sig>-<sha256 prefix>.th`` must hash to its prefix, as the publisher's loader checks."""
    match = SIGNED.fullmatch(path.stem)
    if not match:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match["sha"]):
        raise CheckpointError(f"{path}: its SHA-256 does not start with {match['sha']} as its name says "
                              "(damaged or replaced); re-download it")
