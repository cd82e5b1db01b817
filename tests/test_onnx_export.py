"""`stemsplit export`: every architecture the contract knows exports to ONNX, and ONNX Runtime
gives torch's masks (or outputs) within 1e-4 at two lengths (dynamic axes), batch 2."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import torch
from conftest import TINY, tiny_config, write_tiny_checkpoint
from typer.testing import CliRunner

from stemsplit.checkpoint import LoadedModel
from stemsplit.cli import app
from stemsplit.config import config_from_dict, config_to_dict, load_config
from stemsplit.errors import StemsplitError
from stemsplit.models import build_model, names
from stemsplit.onnx_export import example_input, export_onnx
from stemsplit.onnx_format import META_KEY
from stemsplit.pipelines.export import torch_output
from stemsplit.separation.onnx_runner import load_onnx_runner

TOL = 1e-4
BAG = ["model.name=mask_ensemble", "stft.n_fft=512", "stft.hop_length=128",
       "model.members=[{name: lstm, hidden_size: 16, num_layers: 1, max_bin: 64}, "
       "{name: unet, base_channels: 2, depth: 3, max_bin: 128}]",
       "model.weights=[[0.3,0.5,0.9,0.2],[0.7,0.5,0.1,0.8]]"]
# every registered family at a tiny size, and the variants whose separation step differs
CASES = {name: (name, []) for name in TINY}
CASES.update({"mask_ensemble": (None, BAG),
              "deep_clustering-mask_head": ("deep_clustering", ["model.separation=mask_head"]),
              "deep_clustering-clusters": ("deep_clustering", ["model.clusters=6", "model.kmeans_iterations=3"]),
              "nmf-numpy": ("nmf", ["model.backend=numpy"]),
              "lstm-bridged": ("lstm", ["model.branches=bridged"])})
runner = CliRunner()


# families whose STFT is complex-valued torch inside the network: export refuses them in one line
HTDEMUCS = {"channels": 8, "depth": 2, "nfft": 512, "t_layers": 1, "t_heads": 2, "segment": 0.25}
ROFORMER = {"dim": 16, "depth": 1, "dim_head": 8, "heads": 2, "stft_n_fft": 512, "stft_hop_length": 128,
            "stft_win_length": 512, "num_stems": 4, "stereo": True}
NO_ONNX = {
    "htdemucs": {"name": "htdemucs", **HTDEMUCS},
    "htdemucs_bag": {"name": "htdemucs_bag", "members": [{"name": "htdemucs", **HTDEMUCS}] * 2},
    "bs_roformer": {"name": "bs_roformer", **ROFORMER, "freqs_per_bands": [8, 8, 16, 32, 64, 129]},
    "mel_band_roformer": {"name": "mel_band_roformer", **ROFORMER, "num_bands": 8},
}


def test_every_registered_family_has_a_case():
    assert set(names()) <= {name.split("-")[0] for name in CASES} | set(NO_ONNX)


@pytest.mark.parametrize("family", sorted(NO_ONNX))
def test_a_family_without_onnx_is_refused_in_one_line(family, tmp_path):
    cfg = config_from_dict({"audio": {"sample_rate": 44100, "channels": 2}, "stft": {"n_fft": 512, "hop_length": 128},
                            "stems": ["drums", "bass", "other", "vocals"], "model": NO_ONNX[family],
                            "separate": {"segment_seconds": 0.25, "crossfade": "triangle"}})
    loaded = LoadedModel(build_model(cfg).eval(), cfg, {"name": family, "licence": "test"})
    with pytest.raises(StemsplitError, match="no ONNX export.*--runtime torch") as info:
        export_onnx(loaded, tmp_path / "x.onnx")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


def _loaded(case: str, seed: int = 0) -> LoadedModel:
    arch, extra = CASES[case]
    cfg = tiny_config(arch, extra) if arch else load_config(None, extra)
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():  # move the normalisation and batch-norm statistics off their identity start
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and ("running" in name or "norm" in name):
                tensor.copy_(tensor + 0.1 * torch.rand_like(tensor))
    return LoadedModel(model, cfg, {"name": case, "licence": "test", "recipe": {"config": "tiny"}})


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_runtime_matches_torch(case, tmp_path):
    loaded = _loaded(case)
    path = tmp_path / f"{case}.onnx"
    exported = export_onnx(loaded, path)
    assert exported.output_kind == loaded.model.exported_output_kind
    onnx_runner = load_onnx_runner(path, threads=1)
    assert config_to_dict(onnx_runner.config) == config_to_dict(loaded.config)
    assert onnx_runner.spectral == loaded.model.spectral
    assert onnx_runner.context_frames() == loaded.model.context_frames()
    for i, frames in enumerate((23, 41)):  # neither is the traced length (64): the axes are dynamic
        x = example_input(loaded, frames=frames, batch=2, seed=10 + i)
        want = torch_output(loaded.model, x)
        got = onnx_runner._run(x.numpy())
        assert got.shape == want.shape and got.shape[0] == 2
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
        # and through the runner contract, as the engine calls it
        with torch.inference_mode():
            if loaded.model.spectral:
                np.testing.assert_allclose(onnx_runner.stem_magnitudes(x.numpy()),
                                           loaded.model.stem_magnitudes(x, x).numpy(), rtol=0, atol=TOL * 10)
            else:
                np.testing.assert_allclose(onnx_runner.stem_waveforms(x.numpy()),
                                           loaded.model.stem_waveforms(x).numpy(), rtol=0, atol=TOL)


def _meta(path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return json.loads({p.key: p.value for p in model.metadata_props}[META_KEY])


def test_graph_and_metadata(tmp_path):
    loaded = _loaded("mask_ensemble")
    export_onnx(loaded, tmp_path / "bag.onnx")
    model = onnx.load(str(tmp_path / "bag.onnx"))
    assert model.opset_import[0].version == 17
    assert "LSTM" in {n.op_type for n in model.graph.node}  # the recurrent core is one ONNX op, not unrolled
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("magnitude", "masks")
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 2, 257, "time"]
    meta = _meta(tmp_path / "bag.onnx")
    assert meta["config"] == config_to_dict(loaded.config)
    assert meta["ensemble"]["weights"] == [[0.3, 0.5, 0.9, 0.2], [0.7, 0.5, 0.1, 0.8]]
    assert (meta["input_kind"], meta["output_kind"], meta["stems"], meta["sample_rate"]) == \
        ("magnitude", "masks", list(loaded.config.stems), 44100)
    assert meta["meta"]["licence"] == "test" and meta["weights_dtype"] == "float32"


def test_fp16_weights_halve_the_file_and_keep_the_masks(tmp_path):
    loaded = _loaded("lstm")
    full = export_onnx(loaded, tmp_path / "a.onnx")
    half = export_onnx(loaded, tmp_path / "b.onnx", fp16_weights=True)
    # a tiny graph: the weights are most of it
    assert half.weights_dtype == "float16" and half.size_bytes < 0.65 * full.size_bytes
    x = example_input(loaded, frames=30).numpy()
    a = load_onnx_runner(tmp_path / "a.onnx", threads=1)._run(x)
    b = load_onnx_runner(tmp_path / "b.onnx", threads=1)._run(x)
    assert 0 < np.abs(a - b).max() < 1e-2  # rounded weights: close, not equal
    inits = onnx.load(str(tmp_path / "b.onnx")).graph.initializer
    assert {i.data_type for i in inits if i.name.endswith(".fp16")} == {onnx.TensorProto.FLOAT16}


def test_cli_export_writes_a_checked_file(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "m.ckpt", "lstm")
    out = tmp_path / "out" / "m.onnx"
    res = runner.invoke(app, ["export", "--model", str(ckpt), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "max |diff|" in res.output and out.is_file()
    assert sorted(os.listdir(out.parent)) == ["m.onnx"]  # written through a temp file, none left
    assert load_onnx_runner(out).config.model.name == "lstm"


@pytest.mark.parametrize("model, out, message", [
    ("nope", "x.onnx", "not a shipped model"),
    ("m.ckpt", "x.txt", ".onnx suffix"),
    ("m.onnx", "y.onnx", "already an ONNX model"),
])
def test_cli_export_errors_are_one_line(model, out, message, tmp_path):
    write_tiny_checkpoint(tmp_path / "m.ckpt", "lstm")
    (tmp_path / "m.onnx").write_bytes(b"x")
    model = model if model == "nope" else str(tmp_path / model)
    res = runner.invoke(app, ["export", "--model", model, "-o", str(tmp_path / out)])
    assert res.exit_code == 2 and res.output.startswith("error:")
    assert message in " ".join(res.output.split())  # one line (rich wraps it to the terminal's width)
    assert not (tmp_path / out).exists()
