"""Model resolution: a name, a path or a catalogue entry in, one ResolvedModel with its runner out."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import write_tiny_checkpoint

import stemsplit.pretrained as pretrained
from stemsplit import resolver
from stemsplit.errors import CheckpointError, ConfigError, StemsplitError
from stemsplit.resolver import display_name, resolve
from stemsplit.separation.onnx_runner import OnnxRunner
from stemsplit.separation.torch_runner import TorchRunner

DEFAULT = pretrained.default_model_name()


def test_the_default_runs_on_onnx_runtime_unless_torch_is_asked_for():
    model = resolve(None, threads=1)
    assert (model.name, model.origin, model.runtime) == (DEFAULT, "shipped", "onnx")
    assert isinstance(model.runner, OnnxRunner) and model.files["onnx"].suffix == ".onnx"
    assert model.stems == ["vocals", "drums", "bass", "other"] and model.sample_rate == 44100
    on_torch = resolve("default", "torch", "cpu")
    assert isinstance(on_torch.runner, TorchRunner) and on_torch.loaded is not None
    assert on_torch.architecture == model.architecture and on_torch.files["checkpoint"] == model.files["checkpoint"]


def test_a_gpu_request_takes_torch_and_onnx_on_a_gpu_is_refused():
    with pytest.raises(ConfigError, match="--runtime onnx runs on the CPU"):
        resolve(None, "onnx", "cuda")
    chosen = resolver.pick_runtime(resolver._classify(None, None), "auto", "cuda")
    assert chosen == "torch"


def test_a_checkpoint_path_runs_on_torch_and_an_onnx_path_on_onnx(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "run" / "best.ckpt", "lstm")
    model = resolve(str(ckpt), device="cpu")
    assert (model.name, model.origin, model.runtime) == ("best", "checkpoint", "torch")
    with pytest.raises(CheckpointError, match="no ONNX form.*stemsplit export --model best"):
        resolve(str(ckpt), "onnx")
    onnx = resolve(None, "onnx").files["onnx"]
    mine = resolve(str(onnx))
    assert (mine.origin, mine.runtime) == ("onnx", "onnx")
    with pytest.raises(CheckpointError, match="torch runtime cannot load"):
        resolve(str(onnx), "torch")


def test_unknown_names_and_folders_are_one_line_each(tmp_path):
    for request, pattern in (("nope", r"not a shipped model \(.*band_split_wide"),
                             (str(tmp_path), "is a folder, but not a model folder")):
        with pytest.raises(CheckpointError, match=pattern) as exc:
            resolve(request)
        assert "\n" not in str(exc.value)
    with pytest.raises(StemsplitError, match="runtime"):
        resolve(None, "tensorflow")


def test_without_torch_a_torch_only_model_names_the_extra(tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path / "best.ckpt", "lstm")
    real = resolver._installed
    monkeypatch.setattr(resolver, "_installed", lambda module: module != "torch" and real(module))
    with pytest.raises(ConfigError, match=r'runs on torch, which is not installed: pip install "\.\[train\]"'):
        resolve(str(ckpt))
    assert resolve(None).runtime == "onnx"  # the shipped default needs no torch


def test_display_names_come_without_loading_anything(tmp_path):
    assert display_name(None) == display_name("default") == DEFAULT
    assert display_name("lstm") == "lstm"
    ckpt = write_tiny_checkpoint(tmp_path / "run" / "best.ckpt", "lstm")
    assert display_name(str(ckpt)) == "best"
    assert display_name(str(tmp_path / "run")) == "run"


def test_the_fingerprint_is_the_files_sha256_and_follows_their_bytes(tmp_path):
    import hashlib

    ckpt = write_tiny_checkpoint(tmp_path / "a.ckpt", "lstm")
    model = resolve(str(ckpt), device="cpu")
    assert model.fingerprint() == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    write_tiny_checkpoint(ckpt, "lstm", seed=1)
    assert model.fingerprint() != hashlib.sha256(b"").hexdigest()
    shipped = resolve(None, "onnx")
    assert len(shipped.files) == 2 and len(shipped.fingerprint()) == 64


def test_one_resolution_gives_the_runner_the_engine_runs(tmp_path):
    from stemsplit.separation.engine import Engine

    model = resolve(None, threads=1)
    out = Engine(model.runner).separate(np.zeros((2, 44100), np.float32))
    assert out.shape == (4, 2, 44100)
