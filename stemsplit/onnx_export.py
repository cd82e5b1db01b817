"""Write a model's network as one ONNX graph with its metadata (the format: ``onnx_format.py``).

The graph is what the model contract's ``export_module()`` returns: the network as separation
uses it (magnitude -> masks or spectrograms; waveform -> waveforms), traced by
``torch.onnx.export`` at opset 17 with dynamic batch and frame (sample) axes. Recurrent layers
become ONNX LSTM/GRU ops. It is exported without constant folding, so that every initializer is
a tensor of the model's state_dict under its own name: ONNX Runtime folds the rest at load, and
the weights can be stored as fp16 (``fp16_weights``) or shared with a checkpoint file
(``share_weights_with``). A causal model is written as its streaming step
(``stream_module()``: the recurrent state as extra graph inputs and outputs, see
``onnx_format.py``), which with zero states is the offline network. Imports torch and onnx: the
``train`` extra.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stemsplit.atomic import write_bytes_atomic
from stemsplit.checkpoint import LoadedModel
from stemsplit.config import config_to_dict
from stemsplit.errors import ModelError, StemsplitError
from stemsplit.onnx_format import (
    FORMAT_VERSION,
    INPUT_NAMES,
    META_KEY,
    OPSET,
    OUTPUT_KINDS,
    STREAM_KEY,
    state_names,
    stream_latency,
    zip_entries,
)

EXAMPLE_FRAMES = 64  # frames (or hops of samples) of the tracing input; any length runs afterwards


class ExportError(StemsplitError):
    """A model that cannot be written as ONNX (its kind, a failed trace, a missing package)."""


@dataclass
class Exported:
    path: Path
    input_kind: str
    output_kind: str
    weights_dtype: str
    shared_with: str | None
    size_bytes: int


def example_input(loaded: LoadedModel, frames: int = EXAMPLE_FRAMES, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A generated input of the model's kind: magnitude (B, C, F, T) or waveform (B, C, L)."""
    cfg, model = loaded.config, loaded.model
    gen = torch.Generator().manual_seed(seed)
    if model.input_kind == "waveform":
        return 0.3 * torch.randn(batch, cfg.audio.channels, frames * cfg.stft.hop_length, generator=gen)
    return 2.0 * torch.rand(batch, cfg.audio.channels, cfg.n_bins, frames, generator=gen) ** 2


def state_batch_axes(model) -> list[int]:
    """Per recurrent state tensor of a causal model, the axis whose size grows with the batch."""
    one, two = model.stream_state(1), model.stream_state(2)
    axes = []
    for i, (a, b) in enumerate(zip(one, two)):
        grown = [d for d, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
        if len(grown) != 1 or b.shape[grown[0]] != 2 * a.shape[grown[0]]:
            raise ExportError(f"state tensor {i} of the stream step: {tuple(a.shape)} at batch 1 and "
                              f"{tuple(b.shape)} at batch 2 do not differ by one batch axis")
        axes.append(grown[0])
    return axes


def _trace(module: torch.nn.Module, x: torch.Tensor, input_name: str, output_name: str,
           states: tuple[torch.Tensor, ...] = (), state_axes: list[int] | None = None) -> bytes:
    """ONNX bytes of ``module`` on ``x`` (and the recurrent ``states`` of a causal model's streaming
    step, batch axes ``state_axes``): the TorchScript exporter first, the dynamo one where it is gone."""
    time_axis = x.dim() - 1
    names = [state_names(i) for i in range(len(states))]
    input_names = [input_name, *(n for n, _ in names)]
    output_names = [output_name, *(n for _, n in names)]
    dynamic_axes = {input_name: {0: "batch", time_axis: "time"}, output_name: {0: "batch", time_axis + 1: "time"}}
    for (state_in, state_out), axis in zip(names, state_axes or []):
        dynamic_axes[state_in] = dynamic_axes[state_out] = {axis: f"batch_{state_in}"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic, expected here
        try:
            torch.onnx.export(module, (x, *states), buf, opset_version=OPSET, input_names=input_names,
                              output_names=output_names, dynamo=False, do_constant_folding=False,
                              training=torch.onnx.TrainingMode.PRESERVE, dynamic_axes=dynamic_axes)
        except (TypeError, AttributeError) as exc:  # a torch without the TorchScript exporter
            if "dynamo" not in str(exc) and "TrainingMode" not in str(exc):
                raise
            buf = io.BytesIO()
            dims = {0: torch.export.Dim("batch"), time_axis: torch.export.Dim("time")}
            shapes = [dims] + [{axis: torch.export.Dim(f"batch_{i}")} for i, axis in enumerate(state_axes or [])]
            program = torch.onnx.export(module, (x, *states), dynamo=True, opset_version=OPSET,
                                        input_names=input_names, output_names=output_names,
                                        dynamic_shapes=shapes if states else {input_name: dims})
            program.save(buf)
    return buf.getvalue()


def _to_fp16(proto, names: set[str]) -> list:
    """Store the float32 initializers ``names`` as float16, each behind a Cast back to float32
    (ONNX Runtime folds the Casts at load, so the network computes in float32). Returns the new
    fp16 initializers."""
    from onnx import TensorProto, helper, numpy_helper

    graph, casts, converted = proto.graph, [], []
    for init in graph.initializer:
        if init.name not in names or init.data_type != TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + ".fp16")
        init.CopyFrom(half)
        converted.append(init)
        casts.append(helper.make_node("Cast", [half.name], [half.name[:-len(".fp16")]], to=TensorProto.FLOAT,
                                      name=f"cast:{half.name}"))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return converted


def _share(tensors: list, weights_file: Path) -> dict:
    """Point the fp16 initializers whose bytes are a whole entry of ``weights_file`` (a
    checkpoint written with fp16 weights) at that entry: ONNX external data, no second copy."""
    from onnx import TensorProto

    entries = zip_entries(weights_file)
    by_hash: dict[str, str] = {}
    with open(weights_file, "rb") as fh:
        for name, (offset, length, _crc) in entries.items():
            fh.seek(offset)
            by_hash.setdefault(hashlib.sha256(fh.read(length)).hexdigest(), name)
    used = {}
    for tensor in tensors:
        name = by_hash.get(hashlib.sha256(tensor.raw_data).hexdigest())
        if name is None:
            continue  # not stored as such in the checkpoint (a non-persistent buffer): stays inline
        offset, length, _crc = entries[name]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", weights_file.name), ("offset", str(offset)), ("length", str(length))):
            item = tensor.external_data.add()
            item.key, item.value = key, value
        used[name] = entries[name]
    return {"file": weights_file.name, "entries": used}


def metadata(loaded: LoadedModel, output_kind: str, weights_dtype: str) -> dict:
    model, cfg = loaded.model, loaded.config
    info = {"format": FORMAT_VERSION, "config": config_to_dict(cfg), "input_kind": model.input_kind,
            "output_kind": output_kind, "context_frames": model.context_frames(), "stems": list(cfg.stems),
            "sample_rate": cfg.audio.sample_rate, "weights_dtype": weights_dtype, "opset": OPSET,
            "torch": torch.__version__, "meta": loaded.meta}
    if model.is_causal():
        shapes = [list(t.shape) for t in model.stream_state(1)]
        lookahead = model.lookahead_frames()
        info[STREAM_KEY] = {
            "state": [{"input": state_names(i)[0], "output": state_names(i)[1], "shape": shape, "batch_axis": axis}
                      for i, (shape, axis) in enumerate(zip(shapes, state_batch_axes(model)))],
            "lookahead_frames": lookahead, "n_fft": cfg.stft.n_fft, "hop_length": cfg.stft.hop_length,
            "latency_samples": stream_latency(cfg.stft.n_fft, cfg.stft.hop_length, lookahead)}
    if model.is_ensemble:
        members = loaded.meta.get("members") or [m.get("name") for m in cfg.model.params.members]
        info["ensemble"] = {"members": members, "weights": cfg.model.params.weights}
    return info


def export_onnx(loaded: LoadedModel, path: str | Path, *, fp16_weights: bool = False,
                share_weights_with: str | Path | None = None) -> Exported:
    """Write ``loaded``'s network to ``path`` (atomically). ``fp16_weights`` stores the
    state_dict's float tensors as float16; ``share_weights_with`` (a checkpoint whose weights are
    fp16, e.g. a shipped one, in the same folder as ``path``) makes them external data read from
    that file, so the ONNX file adds only its graph to the package."""
    try:
        import onnx
    except ImportError:
        raise ExportError("stemsplit export needs the onnx package, which is not installed: "
                          "pip install onnx") from None
    path = Path(path)
    model = loaded.model.eval()
    kind = model.exported_output_kind
    if model.input_kind not in INPUT_NAMES or kind not in OUTPUT_KINDS:
        raise ModelError(f"model {loaded.config.model.name!r} maps {model.input_kind} to {kind}; "
                         f"ONNX export covers magnitude or waveform input to {', '.join(OUTPUT_KINDS)}")
    if share_weights_with is not None and Path(share_weights_with).resolve().parent != path.resolve().parent:
        raise ExportError(f"{path}: shared weights must sit in the same folder ({share_weights_with})")
    causal = model.is_causal()
    module = (model.stream_module() if causal else model.export_module()).eval()
    with torch.no_grad():
        try:
            x = example_input(loaded)
            states = tuple(model.stream_state(x.shape[0])) if causal else ()
            raw = _trace(module, x, INPUT_NAMES[model.input_kind], kind, states,
                         state_batch_axes(model) if causal else None)
        except Exception as exc:  # tracing fails in many ways; the user needs the first line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"ONNX export of {loaded.config.model.name!r} failed: {first[:200]}") from None
    proto = onnx.load_from_string(raw)
    onnx.checker.check_model(proto)
    weights = {k for k, v in module.state_dict().items() if v.is_floating_point()}
    half = fp16_weights or share_weights_with is not None
    fp16 = _to_fp16(proto, weights) if half else []
    dtype = "float16" if half else "float32"
    info = metadata(loaded, kind, dtype)
    if share_weights_with is not None:
        info["shared_weights"] = _share(fp16, Path(share_weights_with))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(info, default=str)
    data = proto.SerializeToString()
    write_bytes_atomic(path, data)
    return Exported(path, model.input_kind, kind, dtype,
                    str(share_weights_with) if share_weights_with is not None else None, len(data))
