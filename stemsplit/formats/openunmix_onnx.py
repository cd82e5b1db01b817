"""Open-Unmix's network as a stemsplit ONNX graph, built from its weights with ``onnx.helper`` (no torch).

The graph maps ``magnitude`` (B, C, F, T) to ``spectrograms`` (B, S, C, F, T), as
``stemsplit/models/open_unmix.py`` does, with the eval-mode arithmetic folded into the weights:

- the input's per-bin shift and scale and bn1 into fc1 (every stem's fc1 in one MatMul);
- bn2 into fc2; bn3 and the output's per-bin scale and shift into fc3;
- each recurrent layer becomes one ONNX ``LSTM`` op, its gates reordered from torch's
  (input, forget, cell, output) to ONNX's (input, output, forget, cell).

The file carries the stemsplit metadata (``stemsplit/onnx_format.py``), so
``separation/onnx_runner.load_onnx_runner`` runs it. Shape letters: B batch, C channels,
F bins, Fb the bins the network reads (max_bin), T frames, S stems, H hidden size, D directions.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stemsplit.atomic import atomic_open
from stemsplit.config import Config, config_to_dict
from stemsplit.errors import CheckpointError, ModelError
from stemsplit.onnx_format import FORMAT_VERSION, INPUT_NAMES, META_KEY, OPSET

_BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which Open-Unmix keeps
_GATES = [0, 3, 1, 2]  # torch's (i, f, g, o) chunks in ONNX's (i, o, f, c) order
INPUT, OUTPUT = INPUT_NAMES["magnitude"], "spectrograms"


def _bn(state: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as y = a * z + b: (a, b) in float64."""
    var = state[f"{name}.running_var"].astype(np.float64)
    a = state[f"{name}.weight"].astype(np.float64) / np.sqrt(var + _BN_EPS)
    return a, state[f"{name}.bias"].astype(np.float64) - a * state[f"{name}.running_mean"].astype(np.float64)


def _dense(state: dict, channels: int) -> dict[str, np.ndarray]:
    """One target's three dense layers with every affine step folded in: (K, N) matrices, (N,) biases."""
    f64 = {k: v.astype(np.float64) for k, v in state.items() if v.dtype.kind == "f"}
    mean, scale = np.tile(f64["input_mean"], channels), np.tile(f64["input_scale"], channels)  # (C*Fb,)
    w1 = f64["fc1.weight"]                                  # (H, C*Fb), applied to (x + mean) * scale
    (a1, b1), (a2, b2), (a3, b3) = _bn(state, "bn1"), _bn(state, "bn2"), _bn(state, "bn3")
    out_scale, out_mean = np.tile(f64["output_scale"], channels), np.tile(f64["output_mean"], channels)
    return {"w1": (w1 * scale * a1[:, None]).T, "b1": a1 * (w1 @ (mean * scale)) + b1,
            "w2": (f64["fc2.weight"] * a2[:, None]).T, "b2": b2,
            "w3": (f64["fc3.weight"] * (a3 * out_scale)[:, None]).T, "b3": b3 * out_scale + out_mean}


def _gates(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.split(x, 4)[i] for i in _GATES])


def _recurrent(state: dict, layer: int, directions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM weights of one layer: W (D, 4h, in), R (D, 4h, h), B (D, 8h)."""
    # the recurrent module is the one whose weights are named weight_ih_l0 (the publisher's key)
    prefix = next(k[: -len(".weight_ih_l0")] for k in state if k.endswith(".weight_ih_l0"))
    ws, rs, bs = [], [], []
    for suffix in ("", "_reverse")[:directions]:
        key = f"l{layer}{suffix}"
        ws.append(_gates(state[f"{prefix}.weight_ih_{key}"]))
        rs.append(_gates(state[f"{prefix}.weight_hh_{key}"]))
        bs.append(np.concatenate([_gates(state[f"{prefix}.bias_ih_{key}"]), _gates(state[f"{prefix}.bias_hh_{key}"])]))
    return np.stack(ws), np.stack(rs), np.stack(bs)


class _Graph:
    """Nodes and float32/int64 initializers, added by name."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.array(value, dtype=dtype, order="C"), name))
        return name

    def op(self, kind: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(kind, inputs, [output], name=output, **attrs))
        return output


def _target(g: _Graph, stem: str, code: str, frames: str, state: dict, params: dict, channels: int) -> str:
    """One stem's network after its fc1 code (T, B, H): -> (1, T, B, C, F) its magnitude estimate."""
    directions = 1 if params["unidirectional"] else 2
    x = code
    for layer in range(params["num_layers"]):
        w, r, b = _recurrent(state, layer, directions)
        y = g.op("LSTM", [x, g.const(f"{stem}.rnn{layer}.W", w), g.const(f"{stem}.rnn{layer}.R", r),
                          g.const(f"{stem}.rnn{layer}.B", b)], f"{stem}.rnn{layer}.Y", hidden_size=r.shape[-1],
                 direction="bidirectional" if directions == 2 else "forward")        # (T, D, B, h)
        y = g.op("Transpose", [y], f"{stem}.rnn{layer}.TBDh", perm=[0, 2, 1, 3])
        x = g.op("Reshape", [y, "shape.TB_"], f"{stem}.rnn{layer}.out")             # (T, B, D*h)
    dense = _dense(state, channels)
    x = g.op("Concat", [code, x], f"{stem}.skip", axis=2)                            # (T, B, 2H)
    x = g.op("MatMul", [x, g.const(f"{stem}.fc2.W", dense["w2"])], f"{stem}.fc2")
    x = g.op("Relu", [g.op("Add", [x, g.const(f"{stem}.fc2.B", dense["b2"])], f"{stem}.bn2")], f"{stem}.relu2")
    x = g.op("MatMul", [x, g.const(f"{stem}.fc3.W", dense["w3"])], f"{stem}.fc3")
    x = g.op("Relu", [g.op("Add", [x, g.const(f"{stem}.fc3.B", dense["b3"])], f"{stem}.bn3")], f"{stem}.relu3")
    x = g.op("Reshape", [x, "shape.TBCF"], f"{stem}.TBCF")                          # (T, B, C, F)
    x = g.op("Mul", [x, frames], f"{stem}.estimate")
    return g.op("Unsqueeze", [x, "axis0"], f"{stem}.stacked")


def build_graph(config: Config, weights: dict[str, dict[str, np.ndarray]]):
    """The ONNX ModelProto (no metadata) of the network ``config`` describes, with ``weights``:
    stem -> that target's state dict (the publisher's keys)."""
    from onnx import TensorProto, helper

    params = config.model.params if isinstance(config.model.params, dict) else vars(config.model.params)
    c, f, fb, h = config.audio.channels, config.n_bins, params["max_bin"], params["hidden_size"]
    stems = list(config.stems)
    g = _Graph()
    # reshape targets whose zeros copy the input's (T, B): every tensor's rank stays known
    g.const("axis0", [0], np.int64)
    g.const("shape.TB_", [0, 0, -1], np.int64)
    g.const("shape.TBCF", [0, 0, c, f], np.int64)
    frames = g.op("Transpose", [INPUT], "frames", perm=[3, 0, 1, 2])                  # (T, B, C, F)
    band = g.op("Slice", [frames, g.const("band.start", [0], np.int64), g.const("band.end", [fb], np.int64),
                          g.const("band.axis", [3], np.int64)], "band")               # (T, B, C, Fb)
    band = g.op("Reshape", [band, "shape.TB_"], "band.TBx")                          # (T, B, C*Fb)
    dense = [_dense(weights[s], c) for s in stems]
    codes = g.op("MatMul", [band, g.const("fc1.W", np.concatenate([d["w1"] for d in dense], axis=1))], "fc1")
    codes = g.op("Add", [codes, g.const("fc1.B", np.concatenate([d["b1"] for d in dense]))], "bn1")
    codes = g.op("Tanh", [codes], "codes.TBx")                                       # (T, B, S*H)
    codes = g.op("Reshape", [codes, g.const("shape.TBSH", [0, 0, len(stems), h], np.int64)], "codes")
    stacked = []
    for i, stem in enumerate(stems):
        code = g.op("Gather", [codes, g.const(f"{stem}.index", i, np.int64)], f"{stem}.code", axis=2)  # (T, B, H)
        stacked.append(_target(g, stem, code, frames, weights[stem], params, c))
    out = g.op("Concat", stacked, "stems.TBCF", axis=0)                              # (S, T, B, C, F)
    g.op("Transpose", [out], OUTPUT, perm=[2, 0, 3, 4, 1])                           # (B, S, C, F, T)
    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", c, f, "time"])]
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", len(stems), c, f, "time"])]
    graph = helper.make_graph(g.nodes, "open-unmix", inputs, outputs, initializer=g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="stemsplit")


def write_onnx(config: Config, meta: dict, weights: dict[str, dict[str, np.ndarray]], out: Path) -> None:
    """Build the graph, embed stemsplit's metadata, check it, write it to ``out`` atomically."""
    try:
        import onnx
    except ImportError:
        raise ModelError("converting an open-unmix model to ONNX needs the onnx package: pip install onnx") from None
    try:
        proto = build_graph(config, weights)
    except (KeyError, ValueError, StopIteration) as exc:
        raise CheckpointError(f"{meta.get('source', out)}: its weights do not fit Open-Unmix's network "
                              f"({type(exc).__name__}: {str(exc)[:80]})") from None
    info = {"format": FORMAT_VERSION, "config": config_to_dict(config), "input_kind": "magnitude",
            "output_kind": OUTPUT, "context_frames": None, "stems": list(config.stems),
            "sample_rate": config.audio.sample_rate, "weights_dtype": "float32", "opset": OPSET, "meta": meta}
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(info)
    onnx.checker.check_model(proto)
    with atomic_open(out, "wb") as fh:
        fh.write(proto.SerializeToString())
