"""int8 LSTM weights for an exported file: each ONNX LSTM becomes ONNX Runtime's DynamicQuantizeLSTM.

The LSTMs are most of a recurrent model's network time on a CPU (70 % of the default model's), and
their weights are the part that int8 serves best: one symmetric scale per output row of W and R
(the four gates of each unit keep their own ranges), the activations quantized step by step by the
runtime. Measured on the default model: 123 -> 89 ms of network time per 10-s segment on one thread,
its stems within 40.8 dB or more of the float32 ones on every valid track (medians 46.7-50.4 dB) and
its valid-split score unchanged (docs/benchmarks.md). Every other weight is untouched, so a file
whose weights are shared with a checkpoint (``shared_weights``) still reads them from it; the int8
weights are stored inline.
Imports onnx, onnxruntime and numpy: no torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stemsplit.atomic import write_bytes_atomic
from stemsplit.onnx_format import META_KEY

INT8_KEY = "int8_lstms"  # in the stemsplit metadata: how many LSTMs carry int8 weights


def float_lstm_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Each LSTM's W and R as float32 arrays, keyed by the tensor name the LSTM reads them from.

    They are computed by the graph itself (an fp16-stored weight goes through a Cast), with the
    external data read from beside ``path``."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    model = onnx.load(str(path))  # the external (shared) data inline, from path's folder
    wanted = list(dict.fromkeys(name for node in model.graph.node if node.op_type == "LSTM"
                                for name in node.input[1:3]))
    if not wanted:
        return {}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in wanted)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
             for i in session.get_inputs()}
    feeds[inp.name] = np.ones([d if isinstance(d, int) else (1 if k == 0 else 8) for k, d in enumerate(inp.shape)],
                              np.float32)
    return dict(zip(wanted, session.run(wanted, feeds)))


def per_row_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(directions, 4H, K) float32 -> (directions, K, 4H) int8 and (directions, 4H) float32 scales.

    Symmetric, one scale per output row: q = round(w / scale), scale = max |row| / 127."""
    scale = np.maximum(np.abs(w).max(axis=-1), np.float32(1e-12)) / np.float32(127.0)
    q = np.clip(np.round(w / scale[..., None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(q.transpose(0, 2, 1)), scale.astype(np.float32)


def quantize_lstms(src: str | Path, dst: str | Path) -> int:
    """Write ``src`` to ``dst`` with every LSTM as a DynamicQuantizeLSTM; the number of LSTMs changed.

    ``dst`` must be in ``src``'s folder when ``src`` shares its weights with a checkpoint (the
    external data is found beside the file). Written to a temporary file, then renamed."""
    import onnx
    from onnx import helper, numpy_helper

    src, dst = Path(src), Path(dst)
    values = float_lstm_weights(src)
    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    count = 0
    for node in graph.node:
        if node.op_type != "LSTM":
            continue
        names = []
        for role, name in (("W", node.input[1]), ("R", node.input[2])):
            q, scale = per_row_int8(values[name])
            base = f"{node.name}/{role}_int8"
            graph.initializer.extend([numpy_helper.from_array(q, base),
                                      numpy_helper.from_array(scale, f"{base}_scale"),
                                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}_zero_point")])
            names.append(base)
        # DynamicQuantizeLSTM: the LSTM's 8 inputs (W and R replaced), then W's and R's scale and zero point
        inputs = list(node.input) + [""] * (8 - len(node.input))
        inputs[1:3] = names
        inputs += [f"{names[0]}_scale", f"{names[0]}_zero_point", f"{names[1]}_scale", f"{names[1]}_zero_point"]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name != "layout"}
        node.CopyFrom(helper.make_node("DynamicQuantizeLSTM", inputs, list(node.output), node.name + "_int8",
                                       domain="com.microsoft", **attrs))
        count += 1
    _drop_unused(graph)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            info = json.loads(prop.value)
            info[INT8_KEY] = count
            prop.value = json.dumps(info)
    write_bytes_atomic(dst, model.SerializeToString())
    return count


def _drop_unused(graph) -> None:
    """Remove the nodes whose outputs nothing reads (the Casts of the float weights), then the
    initializers no node reads."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
