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
int8-lstm the same int8 LSTMs (dynamic, per output channel) in the shipped form
          (stemsplit/onnx_int8.py, `stemsplit export --int8`): only the LSTM weights inline,
          every other weight still shared with the checkpoint beside SRC (DST goes in SRC's folder).
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
        from stemsplit.onnx_int8 import quantize_lstms

        quantize_lstms(args.src, args.dst)
        print(f"wrote {args.dst} ({args.dst.stat().st_size / 1e6:.2f} MB)")
    elif args.cmd == "network":
        network(args.models, [int(t) for t in args.threads.split(",")], args.runs)
    elif args.cmd == "quality":
        quality(args.model, args.data, args.split, args.segment, args.overlap)
    else:
        agree(args.reference, args.model, args.data, args.tracks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
