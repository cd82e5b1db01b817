"""The torch-free reader of PyTorch weights files: what torch.save wrote comes back as numpy arrays,
in both layouts, and a file that asks for anything beyond a state dict is refused before any of
it runs."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch
from hostile_pickle import Payload, python, touch

from stemsplit.errors import CheckpointError
from stemsplit.formats.torch_pickle import read_state_dict, read_torch_file

LAYOUTS = {"zip": True, "legacy": False}  # torch.save's _use_new_zipfile_serialization


def _state() -> dict:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    return {
        "float32": torch.randn(3, 4, generator=gen),
        "float16": torch.randn(4, 2, generator=gen).half(),
        "float64": torch.randn(2, dtype=torch.float64, generator=gen),
        "bfloat16": torch.randn(5, generator=gen).bfloat16(),
        "int64": torch.arange(7),
        "int32": torch.arange(4, dtype=torch.int32),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(44100),
        "empty": torch.zeros(0, 3),
        "transposed": base.t(),                 # a view with swapped strides
        "offset_slice": base[2:5, 1::2],        # a view at a storage offset, strided
        "shared_a": base[0], "shared_b": base[1],  # two views of one storage
        "parameter": torch.nn.Parameter(torch.ones(2)),
    }


def _want(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_saved_state_dict_comes_back_as_the_same_arrays(layout, tmp_path):
    state = _state()
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=LAYOUTS[layout])
    got = read_state_dict(path)
    assert list(got) == list(state)
    for key, tensor in state.items():
        want = _want(tensor)
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    assert got["offset_slice"].flags.writeable and got["offset_slice"].flags.c_contiguous


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_model_state_dict_and_a_wrapped_checkpoint(layout, tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.LSTM(4, 2, bidirectional=True))
    torch.save({"epoch": 3, "state_dict": net.state_dict()}, tmp_path / "c.pth",
               _use_new_zipfile_serialization=LAYOUTS[layout])
    got = read_state_dict(tmp_path / "c.pth")
    assert list(got) == list(net.state_dict())
    for key, tensor in net.state_dict().items():
        np.testing.assert_array_equal(got[key], tensor.numpy())
    assert read_torch_file(tmp_path / "c.pth")["epoch"] == 3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shapes_alone_are_read_from_the_pickle_without_the_data(layout, tmp_path):
    state = _state()
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=LAYOUTS[layout])
    shapes = read_state_dict(path, shapes_only=True)
    assert shapes == {k: tuple(v.shape) for k, v in state.items()}
    if layout == "zip":  # without its data entries the file still has its shapes, but no tensors
        stripped = tmp_path / "stripped.pth"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(stripped, "w") as dst:
            for info in src.infolist():
                if "/data/" not in info.filename:
                    dst.writestr(info, src.read(info))
        assert read_state_dict(stripped, shapes_only=True) == shapes
        with pytest.raises(CheckpointError, match="missing"):
            read_state_dict(stripped)


# --- hostile and damaged files ----------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("payload", ["system", "exec"])
def test_a_hostile_pickle_is_refused_and_its_payload_never_runs(layout, payload, tmp_path):
    marker = tmp_path / "pwned"
    evil = (touch(marker) if payload == "system"
            else python(f"open({str(marker)!r}, 'w').write('x')"))
    path = tmp_path / "evil.pth"
    torch.save({"fc1.weight": torch.zeros(2, 2), "hook": evil}, path, _use_new_zipfile_serialization=LAYOUTS[layout])
    for shapes_only in (False, True):
        with pytest.raises(CheckpointError, match="refused") as err:
            read_state_dict(path, shapes_only=shapes_only)
        assert "\n" not in str(err.value)
        assert f".{payload}," in str(err.value)  # it names what it refused (posix.system, __builtin__.exec)
    assert not marker.exists()


def test_a_stand_in_passed_by_the_caller_is_allowed(tmp_path):
    torch.save({"w": torch.ones(1), "n": Payload(os.system, "true")}, tmp_path / "a.pth")
    stand_in = {(os.system.__module__, "system"): lambda cmd: ("ran?", cmd)}
    got = read_torch_file(tmp_path / "a.pth", extra_globals=stand_in)
    assert got["n"] == ("ran?", "true")  # the stand-in was called, never os.system


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.arange(4.0)}, path)
    with zipfile.ZipFile(path) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist()}
    data_pkl = next(name for name in entries if name.endswith("data.pkl"))
    # the size tuple (4,) is pickled as K\x04\x85; make it (9,): 9 floats from a 4-float storage
    entries[data_pkl] = entries[data_pkl].replace(b"K\x04\x85", b"K\x09\x85", 1)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(CheckpointError, match="past the end of its storage"):
        read_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"not a weights file at all", os.urandom(256)])
def test_files_that_are_not_weights_are_one_line_errors(content, tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_files_folders_and_non_state_dicts(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_state_dict(tmp_path)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(tmp_path / "list.pth")
    truncated = tmp_path / "cut.pth"
    torch.save({"w": torch.ones(1000)}, truncated, _use_new_zipfile_serialization=False)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_state_dict(truncated)
