"""int8 LSTM weights (stemsplit/onnx_int8.py, `stemsplit export --int8`): every LSTM becomes
ONNX Runtime's DynamicQuantizeLSTM with per-row int8 weights, the rest of the file is untouched,
the stems stay close to float32, and the export keeps a file only if it passes the stem bar."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import write_tiny_checkpoint
from typer.testing import CliRunner

from stemsplit.checkpoint import load_checkpoint
from stemsplit.cli import app
from stemsplit.onnx_export import export_onnx
from stemsplit.onnx_format import META_KEY
from stemsplit.onnx_int8 import INT8_KEY, per_row_int8, quantize_lstms
from stemsplit.separation.onnx_runner import load_onnx_runner

runner = CliRunner()


def _exported(tmp_path, arch: str, share: bool = False):
    """A tiny model's checkpoint (fp16 when ``share``) and its ONNX file, weights shared with it or inline."""
    ckpt = write_tiny_checkpoint(tmp_path / f"{arch}.ckpt", arch)
    loaded = load_checkpoint(ckpt)
    if share:  # as the shipped models: fp16 weights in the checkpoint, read in place by the graph
        import torch

        from stemsplit.checkpoint import atomic_torch_save, read_checkpoint

        raw = read_checkpoint(ckpt)
        raw["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in raw["state_dict"].items()}
        raw.setdefault("meta", {})["weights_dtype"] = "float16"
        atomic_torch_save(raw, ckpt)
        loaded = load_checkpoint(ckpt)
        assert next(iter(torch.load(ckpt, weights_only=True)["state_dict"].values())).dtype == torch.float16
    path = tmp_path / f"{arch}.onnx"
    export_onnx(loaded, path, share_weights_with=ckpt if share else None)
    return loaded, path


def _agreement_db(want: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per stem (axis 1), 10 log10 of ``want``'s energy over the difference's."""
    axes = (0,) + tuple(range(2, want.ndim))
    return 10 * np.log10((want.astype(np.float64) ** 2).sum(axes) / ((got - want).astype(np.float64) ** 2).sum(axes))


def test_per_row_int8_keeps_each_row_within_half_a_step():
    w = np.random.default_rng(0).standard_normal((2, 16, 5)).astype(np.float32)
    w[1, 3] *= 100  # one loud row must not coarsen the others
    q, scale = per_row_int8(w)
    assert q.dtype == np.int8 and q.shape == (2, 5, 16) and scale.shape == (2, 16)
    back = q.transpose(0, 2, 1).astype(np.float32) * scale[..., None]
    assert np.all(np.abs(back - w) <= scale[..., None] / 2 + 1e-7)
    assert np.abs(q).max() == 127
    assert scale[1, 3] > 50 * scale[1, 2]


@pytest.mark.parametrize("arch,share", [("band_split", False), ("lstm", True)])
def test_every_lstm_becomes_int8_and_the_masks_stay_close(tmp_path, arch, share):
    loaded, path = _exported(tmp_path, arch, share)
    before = load_onnx_runner(path, threads=1)
    lstms = sum(n.op_type == "LSTM" for n in onnx.load(str(path), load_external_data=False).graph.node)
    assert lstms > 0
    mag = np.abs(np.random.default_rng(1).standard_normal((1, 2, loaded.config.stft.n_fft // 2 + 1, 40)))
    want = before._run(mag.astype(np.float32))

    out = path.with_name("int8.onnx")
    assert quantize_lstms(path, out) == lstms
    model = onnx.load(str(out), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    assert "LSTM" not in ops and ops.count("DynamicQuantizeLSTM") == lstms
    int8 = [t for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.INT8 and not t.name.endswith("_point")]
    assert len(int8) == 2 * lstms  # W and R of each, inline
    info = json.loads(next(p.value for p in model.metadata_props if p.key == META_KEY))
    assert info[INT8_KEY] == lstms
    # the other weights stay where they were: shared with the checkpoint, or inline float32
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert bool(external) == share and ("shared_weights" in info) == share

    got = load_onnx_runner(out, threads=1)._run(mag.astype(np.float32))
    assert got.shape == want.shape
    assert 0 < np.abs(got - want).max() < 0.05  # changed, but slightly
    assert _agreement_db(want, got).min() > 30


def test_a_file_without_lstms_is_left_as_it_is(tmp_path):
    _, path = _exported(tmp_path, "unet")
    before = path.read_bytes()
    assert quantize_lstms(path, path.with_name("same.onnx")) == 0
    assert path.read_bytes() == before


def test_export_int8_lstm_writes_and_reports_the_agreement(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "lstm.ckpt", "lstm")
    out = tmp_path / "lstm.onnx"
    res = runner.invoke(app, ["export", "--model", str(ckpt), "-o", str(out), "--int8"])
    assert res.exit_code == 0, res.output
    assert "LSTM(s) int8" in res.output and "dB of torch" in res.output
    ops = {n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops


def test_export_int8_lstm_refuses_a_model_without_lstms_in_one_line(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "unet.ckpt", "unet")
    out = tmp_path / "unet.onnx"
    res = runner.invoke(app, ["export", "--model", str(ckpt), "-o", str(out), "--int8"])
    assert res.exit_code == 2
    assert "has no LSTM" in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists()


def test_export_int8_lstm_removes_a_file_under_the_stem_bar(tmp_path, monkeypatch):
    import stemsplit.pipelines.export as export

    monkeypatch.setattr(export, "INT8_MIN_DB", 300.0)  # no int8 file reaches it
    ckpt = write_tiny_checkpoint(tmp_path / "lstm.ckpt", "lstm")
    out = tmp_path / "lstm.onnx"
    res = runner.invoke(app, ["export", "--model", str(ckpt), "-o", str(out), "--int8"])
    assert res.exit_code == 2 and "agrees with torch at only" in res.output
    assert not out.exists() and not list(tmp_path.glob(".lstm.onnx*"))
