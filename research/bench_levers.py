"""The separation speed levers of docs/benchmarks.md, one at a time: what each costs and what it gains.

usage:
  bench_levers.py quantize [--ops lstm|all] [--per-tensor] [--static DATA] SRC.onnx DST.onnx
  bench_levers.py int8-lstm SRC.onnx DST.onnx
  bench_levers.py network MODEL.onnx [...] [--threads 1,2] [--runs 10]
  bench_levers.py quality MODEL.onnx [--data DIR] [--split valid|train|all] [--segment S] [--overlap O]
  bench_levers.py agree REFERENCE.onnx MODEL.onnx [--data DIR] [--tracks 6]

quantize  int8 weights for an exported model (ONNX Runtime's quantization tool): dynamic (weights
          int8, activations quantized at run time), of the LSTMs only or of every MatMul too, per
          output channel unless --per-tensor; or --static with activation ranges calibrated on
          mixture excerpts of a prepared dataset's train split (QDQ; ONNX Runtime has no static
          int8 LSTM, so only the MatMuls). The result holds its weights inline.
int8-lstm the same int8 LSTMs (dynamic, per output channel) in the shipped form: only the LSTM
          weights inline, every other weight still shared with the checkpoint beside SRC (DST goes
          in SRC's folder).
network   CPU milliseconds (and wall) of the network alone per 10-s stereo segment, per thread count.
quality   median global SDR per stem over a split's tracks and their mean, separated by the engine
          with that file on ONNX Runtime: what `stemsplit evaluate --metrics fast` reports.
agree     SDR of each stem of MODEL against REFERENCE's on the first tracks of the valid split,
          joined into one mixture (the ONNX-versus-torch check's measure).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: another checkout can be profiled

from stemsplit.onnx_format import META_KEY  # noqa: E402

DATA = Path("data/musdb7")
SEGMENT_FRAMES = 431  # a 10-s segment at hop 1024, 44.1 kHz


def _inline(src: Path, dst: Path) -> None:
    """``src`` with every weight inline and the casts of fp16 weights folded (ONNX Runtime's basic
    graph optimisations), its stemsplit metadata kept: the quantization tool's input."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])


def _drop_shared_weights(path: Path) -> None:
    """The quantized file holds its own weights: its metadata must not point at a checkpoint."""
    import onnx

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            info = json.loads(prop.value)
            info.pop("shared_weights", None)
            prop.value = json.dumps(info)
    onnx.save(model, str(path))


class _Excerpts:
    """Calibration data for static quantization: |STFT| of mixture excerpts of a prepared split."""

    def __init__(self, data: Path, input_name: str, count: int = 16, seed: int = 0):
        from stemsplit.audio.stft_numpy import NumpySTFT
        from stemsplit.config import STFTConfig
        from stemsplit.data.reader import PreparedDataset

        ds = PreparedDataset(data)
        names = ds.tracks("train")
        rng = np.random.default_rng(seed)
        stft = NumpySTFT(STFTConfig(n_fft=4096, hop_length=1024, window="hann"))
        self.items = []
        for name in rng.choice(names, size=min(count, len(names)), replace=False):
            mix = ds.load_track(str(name))["mixture"]
            mag = np.abs(stft.forward(mix)).astype(np.float32)
            self.items.append({input_name: mag[None]})
        self._it = iter(self.items)

    def get_next(self):
        return next(self._it, None)


def quantize(src: Path, dst: Path, ops: str = "lstm", per_channel: bool = True,
             static_data: Path | None = None) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        inline = Path(tmp) / "inline.onnx"
        _inline(src, inline)
        if static_data is not None:
            import onnxruntime as ort

            name = ort.InferenceSession(str(inline), providers=["CPUExecutionProvider"]).get_inputs()[0].name
            quantize_static(str(inline), str(dst), _Excerpts(static_data, name), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["MatMul"], per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        else:
            quantize_dynamic(str(inline), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                             op_types_to_quantize=["LSTM"] if ops == "lstm" else ["LSTM", "MatMul"],
                             extra_options={"MatMulConstBOnly": True})
    _drop_shared_weights(dst)
    return dst


def _lstm_weights(src: Path) -> dict[str, np.ndarray]:
    """The float32 values of every LSTM's W and R inputs (computed from the fp16 weights by the graph)."""
    import shutil

    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src), load_external_data=False)
    wanted = [name for node in model.graph.node if node.op_type == "LSTM" for name in node.input[1:3]]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in wanted)
    with tempfile.TemporaryDirectory() as tmp:
        shared = json.loads(next(p.value for p in model.metadata_props if p.key == META_KEY)).get("shared_weights")
        if shared:  # the external data is found beside the model file
            shutil.copy(src.parent / shared["file"], Path(tmp) / shared["file"])
        onnx.save(model, str(Path(tmp) / "probe.onnx"))
        session = ort.InferenceSession(str(Path(tmp) / "probe.onnx"), providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else (1 if i == 0 else 8) for i, d in enumerate(inp.shape)]
        values = session.run(wanted, {inp.name: np.ones(shape, np.float32)})
    return dict(zip(wanted, values))


def _per_channel_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dirs, 4H, K) float32 -> (dirs, K, 4H) int8 and (dirs, 4H) scales: symmetric, one scale per output row."""
    scale = np.maximum(np.abs(w).max(axis=-1), 1e-12) / 127.0
    q = np.clip(np.round(w / scale[..., None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(q.transpose(0, 2, 1)), scale.astype(np.float32)


def int8_lstm(src: Path, dst: Path) -> Path:
    """The shipping form: ``src`` with its LSTMs as ONNX Runtime's DynamicQuantizeLSTM, int8 weights per
    output channel inline (~0.6 MB for the default model), every other weight still read from the
    checkpoint beside it. ``dst`` goes in the same folder as ``src``."""
    import onnx
    from onnx import helper, numpy_helper

    values = _lstm_weights(src)
    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    for node in graph.node:
        if node.op_type != "LSTM":
            continue
        extra = []
        for name in node.input[1:3]:
            q, scale = _per_channel_int8(values[name])
            base = f"{node.name}/{'W' if name == node.input[1] else 'R'}_int8"
            graph.initializer.extend([numpy_helper.from_array(q, f"{base}"),
                                      numpy_helper.from_array(scale, f"{base}_scale"),
                                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}_zero_point")])
            extra.append(base)
        inputs = list(node.input) + [""] * (8 - len(node.input))
        inputs[1:3] = extra
        inputs += [f"{extra[0]}_scale", f"{extra[0]}_zero_point", f"{extra[1]}_scale", f"{extra[1]}_zero_point"]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name != "layout"}
        new = helper.make_node("DynamicQuantizeLSTM", inputs, list(node.output), node.name + "_int8",
                               domain="com.microsoft", **attrs)
        node.CopyFrom(new)
    while True:  # drop what computed the float weights (their fp16 initializers included)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return dst


def network(paths: list[Path], threads: list[int], runs: int) -> None:
    from stemsplit.separation.onnx_runner import load_onnx_runner

    x = np.abs(np.random.default_rng(0).standard_normal((1, 2, 2049, SEGMENT_FRAMES))).astype(np.float32)
    for path in paths:
        for n in threads:
            runner = load_onnx_runner(path, threads=n)
            runner.stem_magnitudes(x)  # the arena's first allocations
            cpu, wall = [], []
            for _ in range(runs):
                c, w = time.process_time(), time.perf_counter()
                runner.stem_magnitudes(x)
                cpu.append(time.process_time() - c)
                wall.append(time.perf_counter() - w)
            print(f"  {path.name:32s} {n} thread(s): {statistics.median(cpu) * 1000:6.1f} ms CPU, "
                  f"{statistics.median(wall) * 1000:6.1f} ms wall per 10-s segment (median of {runs})", flush=True)


def _engine(path: Path, segment: float | None = None, overlap: float | None = None):
    from stemsplit.separation.engine import Engine
    from stemsplit.separation.onnx_runner import load_onnx_runner
    from stemsplit.settings import EngineSettings

    return Engine(load_onnx_runner(path, threads=1), EngineSettings(segment_seconds=segment, overlap=overlap,
                                                                     device="cpu"))


def quality(path: Path, data: Path, split: str, segment: float | None, overlap: float | None) -> dict:
    from stemsplit.data.reader import PreparedDataset
    from stemsplit.metrics import global_sdr_stems

    ds = PreparedDataset(data)
    names = ds.tracks("train") + ds.tracks("valid") if split == "all" else ds.tracks(split)
    engine = _engine(path, segment, overlap)
    scores = []
    for name in names:
        track = ds.load_track(name)
        refs = np.stack([track[s] for s in engine.stems])
        scores.append(global_sdr_stems(refs, engine.separate(track["mixture"])))
    medians = np.median(np.array(scores), axis=0)
    row = {stem: round(float(m), 3) for stem, m in zip(engine.stems, medians)}
    row["mean"] = round(float(medians.mean()), 4)
    print(f"  {path.name} ({len(names)} tracks, segment {engine.segment} overlap {engine.overlap} samples): "
          + "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return row


def agree(reference: Path, path: Path, data: Path, tracks: int) -> dict:
    from stemsplit.data.reader import PreparedDataset

    ds = PreparedDataset(data)
    mix = np.concatenate([ds.load_track(n)["mixture"] for n in ds.tracks("valid")[:tracks]], axis=-1)
    ref, est = (_engine(p).separate(mix).astype(np.float64) for p in (reference, path))
    row = {}
    for i, stem in enumerate(_engine(reference).stems):
        row[stem] = round(float(10 * np.log10(np.sum(ref[i] ** 2) / max(np.sum((ref[i] - est[i]) ** 2), 1e-30))), 1)
    print(f"  {path.name} against {reference.name}: " + "  ".join(f"{k} {v} dB" for k, v in row.items()), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("src", type=Path)
    q.add_argument("dst", type=Path)
    q.add_argument("--ops", choices=("lstm", "all"), default="lstm")
    q.add_argument("--per-tensor", action="store_true")
    q.add_argument("--static", type=Path, metavar="DATA", help="calibrate on this prepared dataset (MatMuls only)")
    i8 = sub.add_parser("int8-lstm")
    i8.add_argument("src", type=Path)
    i8.add_argument("dst", type=Path)
    n = sub.add_parser("network")
    n.add_argument("models", type=Path, nargs="+")
    n.add_argument("--threads", default="1,2")
    n.add_argument("--runs", type=int, default=10)
    s = sub.add_parser("quality")
    s.add_argument("model", type=Path)
    s.add_argument("--data", type=Path, default=DATA)
    s.add_argument("--split", default="valid")
    s.add_argument("--segment", type=float)
    s.add_argument("--overlap", type=float)
    a = sub.add_parser("agree")
    a.add_argument("reference", type=Path)
    a.add_argument("model", type=Path)
    a.add_argument("--data", type=Path, default=DATA)
    a.add_argument("--tracks", type=int, default=6)
    args = ap.parse_args()
    if args.cmd == "quantize":
        out = quantize(args.src, args.dst, args.ops, not args.per_tensor, args.static)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    elif args.cmd == "int8-lstm":
        out = int8_lstm(args.src, args.dst)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    elif args.cmd == "network":
        network(args.models, [int(t) for t in args.threads.split(",")], args.runs)
    elif args.cmd == "quality":
        quality(args.model, args.data, args.split, args.segment, args.overlap)
    else:
        agree(args.reference, args.model, args.data, args.tracks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
