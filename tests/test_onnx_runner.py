"""The ONNX runner: shipped models give torch's outputs, it never imports torch, and a bad
file is one clear line."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import stemsplit.pretrained as pretrained
from stemsplit.checkpoint import atomic_torch_save, read_checkpoint
from stemsplit.config import config_to_dict
from stemsplit.errors import CheckpointError, StemsplitError
from stemsplit.onnx_export import example_input
from stemsplit.onnx_int8 import INT8_KEY
from stemsplit.pipelines.export import INT8_MIN_DB, agreement_with_torch, torch_output
from stemsplit.resolver import load_torch, resolve
from stemsplit.separation.onnx_runner import load_onnx_runner
from stemsplit.separation.runner import NetworkRunner

SHIPPED = [m["name"] for m in pretrained.list_models()]


def onnx_file(name):
    """The shipped ONNX file of ``name`` (None: the default), as the resolver finds it."""
    return resolve(name, "onnx", threads=1).files["onnx"]
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_on_onnx_runtime_matches_torch(name):
    runner = load_onnx_runner(onnx_file(name), threads=1)
    loaded = load_torch(name)
    assert isinstance(runner, NetworkRunner)
    ours, theirs = config_to_dict(runner.config), config_to_dict(loaded.config)
    # the model section is stored as exported; fields a family gained since (e.g. causal) take
    # their defaults on torch, so every stored field must agree
    stored, current = ours.pop("model"), theirs.pop("model")
    assert {k: current[k] for k in stored} == stored and ours == theirs
    assert runner.meta["licence"] == loaded.meta["licence"]
    if runner.info.get(INT8_KEY):  # int8 LSTM weights: the stems' bar, on a generated song
        assert agreement_with_torch(loaded, runner.path, seconds=12.0) >= INT8_MIN_DB
        return
    for i, frames in enumerate((9, 20)):  # two lengths, batch 2, a short input
        x = example_input(loaded, frames=frames, batch=2, seed=i)
        want = torch_output(loaded.model, x)
        got = runner._run(x.numpy())
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_a_mask_file_gives_its_masks_and_the_same_stems_either_way():
    """stem_masks x |X| is stem_magnitudes, and the engine's one-multiply mask path gives the stems
    of the magnitude path (within float rounding)."""
    from stemsplit.separation.engine import Engine
    from stemsplit.settings import EngineSettings

    runner = load_onnx_runner(onnx_file(None), threads=1)
    assert runner.mask_output
    mag = np.abs(np.random.default_rng(0).standard_normal((1, 2, runner.config.n_bins, 30))).astype(np.float32)
    masks = runner.stem_masks(mag)
    assert masks.min() >= 0 and masks.max() <= 1
    np.testing.assert_allclose(masks * mag[:, None], runner.stem_magnitudes(mag), rtol=1e-6, atol=0)
    mix = np.random.default_rng(1).standard_normal((2, 44100 * 3)).astype(np.float32) * 0.1
    for wiener in (0, 1):
        fast = Engine(runner, EngineSettings(wiener_iterations=wiener)).separate(mix)
        runner.mask_output = False
        plain = Engine(runner, EngineSettings(wiener_iterations=wiener)).separate(mix)
        runner.mask_output = True
        np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-6)
        assert np.abs(fast).max() > 1e-3
    waveform = next(r for r in map(lambda n: load_onnx_runner(onnx_file(n), threads=1), SHIPPED) if not r.spectral)
    assert not waveform.mask_output
    with pytest.raises(StemsplitError, match="gives waveforms, not masks"):
        waveform.stem_masks(mag)


def test_a_separation_with_the_onnx_runner_imports_no_torch():
    """In a fresh interpreter: load the default model's ONNX file and run it; torch stays out."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from stemsplit.resolver import resolve
        runner = resolve(None, "onnx", threads=1).runner
        c, f = runner.config.audio.channels, runner.config.n_bins
        if runner.spectral:
            out = runner.stem_magnitudes(np.ones((1, c, f, 8), np.float32))
        else:
            out = runner.stem_waveforms(np.zeros((1, c, 4096), np.float32))
        assert out.shape[1] == len(runner.config.stems) and np.isfinite(out).all()
        heavy = sorted(m for m in ("torch", "torchaudio", "onnx") if m in sys.modules)
        print("imported:", heavy)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.strip() == "imported: []"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert isinstance(exc.value, StemsplitError) and "\n" not in text
    return text


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError) as exc:
        load_onnx_runner(tmp_path / "missing.onnx")
    assert "not found" in _one_line(exc)
    with pytest.raises(CheckpointError) as exc:
        load_onnx_runner(tmp_path)
    assert "folder" in _one_line(exc)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx file" * 10)
    with pytest.raises(CheckpointError) as exc:
        load_onnx_runner(junk)
    assert "not a readable ONNX model" in _one_line(exc)
    foreign = tmp_path / "foreign.onnx"  # a valid ONNX model that stemsplit did not write
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(CheckpointError) as exc:
        load_onnx_runner(foreign)
    assert "not a stemsplit export" in _one_line(exc) and "stemsplit export" in str(exc.value)
    with pytest.raises(StemsplitError):
        load_onnx_runner(onnx_file(None), threads=0)


def test_a_shipped_file_refuses_a_checkpoint_rewritten_after_its_export(tmp_path):
    """The shipped .onnx reads its weights from the .ckpt beside it; a rewritten checkpoint (its
    tensors moved inside the file) is refused, not read at the old offsets."""
    name = pretrained.default_model_name()
    entry = pretrained.registry()["models"][name]
    for key in ("file", "onnx"):
        shutil.copy(Path(pretrained.__file__).parent / entry[key], tmp_path / entry[key])
    load_onnx_runner(tmp_path / entry["onnx"], threads=1)  # the copies work together
    ckpt = read_checkpoint(tmp_path / entry["file"])
    ckpt["meta"]["note"] = "x" * 1000  # a longer header: every tensor's offset moves
    atomic_torch_save(ckpt, tmp_path / entry["file"])
    with pytest.raises(CheckpointError) as exc:
        load_onnx_runner(tmp_path / entry["onnx"], threads=1)
    assert "changed since the export" in _one_line(exc)
    (tmp_path / entry["file"]).unlink()
    with pytest.raises(CheckpointError) as exc:
        load_onnx_runner(tmp_path / entry["onnx"], threads=1)
    _one_line(exc)


def test_the_waveform_contract_is_kept_apart():
    """A spectral runner refuses waveforms and a waveform runner magnitudes (one line each)."""
    runners = [load_onnx_runner(onnx_file(n), threads=1) for n in SHIPPED]
    spectral = next(r for r in runners if r.spectral)
    with pytest.raises(StemsplitError, match="stem_magnitudes"):
        spectral.stem_waveforms(np.zeros((1, 2, 100), np.float32))
    waveform = [r for r in runners if not r.spectral]
    for r in waveform:
        with pytest.raises(StemsplitError, match="stem_waveforms"):
            r.stem_magnitudes(np.zeros((1, 2, 5, 5), np.float32))
    assert torch.get_num_threads() >= 1  # torch untouched by the runners


@pytest.mark.parametrize("cores,threads", [({0}, 1), ({0, 1}, 2), (set(range(8)), 8), (None, 3)])
def test_the_network_runs_on_every_core_the_process_may_use_unless_told(monkeypatch, cores, threads):
    """Default intra-op threads: the cores of the affinity mask (None: no mask on this platform, so
    the machine's count, here 3), shared with the engine's thread."""
    from stemsplit.separation import onnx_runner

    def affinity(pid):
        if cores is None:
            raise AttributeError("no sched_getaffinity here")
        return cores

    monkeypatch.setattr(onnx_runner.os, "sched_getaffinity", affinity, raising=False)
    monkeypatch.setattr(onnx_runner.os, "cpu_count", lambda: 3)
    assert onnx_runner.default_threads() == threads
    path = onnx_file(None)
    assert int(load_onnx_runner(path).session.get_session_options().intra_op_num_threads) == threads
    assert int(load_onnx_runner(path, threads=3).session.get_session_options().intra_op_num_threads) == 3
