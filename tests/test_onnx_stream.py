"""A causal model's ONNX file is its streaming step: the recurrent state as graph inputs and
outputs, recorded in the metadata. ONNX Runtime's step agrees with torch's forward_stream within
1e-4 from a non-zero state; with zero states the same file is the offline network; files of
offline models keep their one input."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import tiny_config

from stemsplit.checkpoint import LoadedModel
from stemsplit.models import build_model
from stemsplit.onnx_export import example_input, export_onnx
from stemsplit.onnx_format import META_KEY, STREAM_KEY
from stemsplit.pipelines.export import torch_output
from stemsplit.separation.onnx_runner import load_onnx_runner
from stemsplit.separation.stream_step import open_stream_step
from stemsplit.separation.torch_runner import TorchRunner

TOL = 1e-4
CAUSAL = {"crnn_causal": ("crnn_causal", []), "band_split_causal": ("band_split", ["model.causal=true"])}


def causal_model(case: str = "crnn_causal", seed: int = 0) -> LoadedModel:
    """A tiny causal model with its normalisation and batch-norm statistics moved off their start."""
    arch, extra = CAUSAL[case]
    cfg = tiny_config(arch, extra)
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and ("running" in name or "norm" in name):
                tensor.copy_(tensor + 0.1 * torch.rand_like(tensor))
    return LoadedModel(model, cfg, {"name": case})


def _meta(path) -> dict:
    import json

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(props[META_KEY])


@pytest.mark.parametrize("case", sorted(CAUSAL))
def test_the_metadata_records_the_state_and_the_latency(case, tmp_path):
    loaded = causal_model(case)
    path = tmp_path / "m.onnx"
    export_onnx(loaded, path)
    stream = _meta(path)[STREAM_KEY]
    zero = loaded.model.stream_state(1)
    assert [s["shape"] for s in stream["state"]] == [list(t.shape) for t in zero]
    assert [s["input"] for s in stream["state"]] == [f"state_in_{i}" for i in range(len(zero))]
    for spec, one, three in zip(stream["state"], zero, loaded.model.stream_state(3)):
        grown = list(one.shape)
        grown[spec["batch_axis"]] *= 3
        assert grown == list(three.shape)
    assert stream["lookahead_frames"] == 0 and stream["n_fft"] == 512 and stream["hop_length"] == 128
    assert stream["latency_samples"] == 511
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["magnitude", *(s["input"] for s in stream["state"])]
    assert [o.name for o in graph.output] == ["masks", *(s["output"] for s in stream["state"])]


@pytest.mark.parametrize("case", sorted(CAUSAL))
def test_onnx_runtime_steps_as_torch_does_from_a_non_zero_state(case, tmp_path):
    loaded = causal_model(case)
    path = tmp_path / "m.onnx"
    export_onnx(loaded, path)
    runner = load_onnx_runner(path, threads=1)
    gen = torch.Generator().manual_seed(3)
    for batch, frames in ((1, 1), (2, 5)):  # neither the traced batch nor length: the axes are dynamic
        x = example_input(loaded, frames=frames, batch=batch, seed=frames)
        state = tuple(torch.randn(t.shape, generator=gen) for t in loaded.model.stream_state(batch))
        with torch.inference_mode():
            want = [t.numpy() for t in loaded.model.forward_stream(x, *state)]
        names = [spec["input"] for spec in runner.info[STREAM_KEY]["state"]]
        got = runner.session.run(None, {"magnitude": x.numpy(), **{n: s.numpy() for n, s in zip(names, state)}})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=TOL)


def test_the_stream_steps_of_both_runtimes_agree_frame_after_frame(tmp_path):
    loaded = causal_model()
    path = tmp_path / "m.onnx"
    export_onnx(loaded, path)
    on_onnx = open_stream_step(load_onnx_runner(path, threads=1))
    on_torch = open_stream_step(TorchRunner(loaded.model, loaded.config))
    x = example_input(loaded, frames=12, batch=1, seed=5).numpy()
    for t in range(x.shape[-1]):  # the state carried 12 times: a wrong swap of the banks would show
        for step in (on_onnx, on_torch):
            step.mag[...] = x[..., t:t + 1]
            step.run()
        np.testing.assert_allclose(on_onnx.out, on_torch.out, rtol=0, atol=TOL)
    with torch.inference_mode():
        whole = loaded.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(on_onnx.out[..., 0], whole[..., -1], rtol=0, atol=TOL)


def test_with_zero_state_the_file_is_the_offline_network(tmp_path):
    loaded = causal_model()
    path = tmp_path / "m.onnx"
    export_onnx(loaded, path)
    runner = load_onnx_runner(path, threads=1)
    x = example_input(loaded, frames=37, batch=2, seed=9)
    np.testing.assert_allclose(runner._run(x.numpy()), torch_output(loaded.model, x), rtol=0, atol=TOL)


def test_an_offline_model_keeps_its_one_input_and_cannot_stream(tmp_path):
    cfg = tiny_config("crnn")
    torch.manual_seed(0)
    path = tmp_path / "offline.onnx"
    export_onnx(LoadedModel(build_model(cfg).eval(), cfg, {}), path)
    assert STREAM_KEY not in _meta(path)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["magnitude"]
    from stemsplit.errors import ModelError

    with pytest.raises(ModelError, match="not a streaming model"):
        open_stream_step(load_onnx_runner(path, threads=1))
    with pytest.raises(ModelError, match="not causal"):
        open_stream_step(TorchRunner(build_model(cfg).eval(), cfg))
