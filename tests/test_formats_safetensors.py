"""The numpy .safetensors reader: files written by the safetensors package read back exactly, with
their metadata; malformed files are refused in one line."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch_file

from stemsplit.errors import CheckpointError
from stemsplit.formats.safetensors import read_header, read_safetensors


def test_arrays_and_metadata_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w.f32": rng.standard_normal((3, 4)).astype(np.float32),
              "w.f16": rng.standard_normal((5,)).astype(np.float16),
              "n.i64": np.arange(6, dtype=np.int64).reshape(2, 3),
              "b.bool": np.array([True, False]),
              "empty": np.zeros((0, 3), np.float32),
              "scalar": np.array(2.5, dtype=np.float64)}
    path = tmp_path / "a.safetensors"
    save_file(arrays, str(path), metadata={"klass": "x.Y", "kwargs": json.dumps({"a": 1})})
    got = read_safetensors(path)
    assert got.metadata == {"klass": "x.Y", "kwargs": '{"a": 1}'}
    assert set(got.tensors) == set(arrays)
    for name, array in arrays.items():
        assert got.tensors[name].dtype == array.dtype and got.tensors[name].shape == array.shape, name
        np.testing.assert_array_equal(got.tensors[name], array)
    assert got.tensors["w.f32"].flags.writeable  # a copy, not a view of the file's bytes
    assert read_header(path)[1]["klass"] == "x.Y"


def test_bfloat16_widens_to_the_same_float32_values(tmp_path):
    t = torch.randn(7, 3).to(torch.bfloat16)
    save_torch_file({"t": t}, str(tmp_path / "b.safetensors"))
    got = read_safetensors(tmp_path / "b.safetensors").tensors["t"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, t.float().numpy())


def _raw(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


@pytest.mark.parametrize("content,match", [
    (b"\x01\x02", "shorter than its 8-byte header length"),
    (_raw({}, length=1 << 40), "does not fit the file"),
    (struct.pack("<Q", 4) + b"nope", "not JSON"),
    (_raw([1, 2]), "not a JSON object"),
    (_raw({"__metadata__": {"a": 1}}), "__metadata__ is not a mapping of strings"),
    (_raw({"t": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "unknown dtype 'F8'"),
    (_raw({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "has the shape"),
    (_raw({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4), "truncated"),
    (_raw({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 8), "not the 8 its shape needs"),
    (_raw({"t": "no"}), "has no description"),
])
def test_malformed_files_are_refused_in_one_line(tmp_path, content, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        read_safetensors(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_safetensors(tmp_path / "absent.safetensors")


def test_the_reader_needs_no_torch():
    code = ("import sys, stemsplit.formats.safetensors; "
            "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
