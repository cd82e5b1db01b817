"""Real-time streaming: one stream on this CPU, per streaming model and runtime.

For each model the registry marks ``"streaming": true`` (or, where none ships yet, a randomly
initialised model of configs/crnn_causal.yaml: its weights do not change its speed), the
streaming engine separates a generated 20-s stereo song in blocks of 512 samples, one network
thread, back to back. Reported: the declared latency, the compute time per block (p50, p99, max)
against the block's duration and the bar of half of it, the CPU time of each block's thread
(the same without the waits for a core that a busy machine adds), the real-time factor, and the
CPU use of a real-time stream (CPU seconds per second of audio). A histogram of the per-block compute times
goes to docs/stream_compute_histogram.png.

The live path adds one thread hand-off per block to these numbers (LiveLoop); the sound card's
own buffering is not counted (it depends on the device).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 512
SECONDS = 20.0
HISTOGRAM = ROOT / "docs" / "stream_compute_histogram.png"


def _song(seconds: float, sr: int = 44100) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    tones = sum(0.1 / k * np.sin(2 * np.pi * 196 * k * t) for k in range(1, 8))
    gate = (np.sin(2 * np.pi * 2 * t) > 0) * 0.2 * rng.standard_normal(t.size)
    return np.stack([tones + gate, 0.8 * tones + gate]).astype(np.float32)


def _models(tmp: Path) -> dict[str, tuple[str, str]]:
    """Label -> (model: a shipped name or a file, runtime) for every streaming model to measure."""
    from stemsplit.pretrained import registry

    shipped = [name for name, entry in registry().get("models", {}).items() if entry.get("streaming")]
    if shipped:
        return {f"{name} ({runtime})": (name, runtime) for name in shipped for runtime in ("onnx", "torch")}
    import torch

    from stemsplit.checkpoint import LoadedModel, save_checkpoint
    from stemsplit.config import load_config
    from stemsplit.models import build_model
    from stemsplit.onnx_export import export_onnx

    cfg = load_config(ROOT / "configs" / "crnn_causal.yaml", [])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    save_checkpoint(tmp / "crnn_causal.ckpt", model, cfg, meta={"note": "random weights (benchmark)"})
    export_onnx(LoadedModel(model, cfg, {}), tmp / "crnn_causal.onnx")
    return {"crnn_causal, random weights (onnx)": (str(tmp / "crnn_causal.onnx"), "onnx"),
            "crnn_causal, random weights (torch)": (str(tmp / "crnn_causal.ckpt"), "torch")}


def measure(model: str, runtime: str = "auto", seconds: float = SECONDS) -> dict:
    from stemsplit.pipelines.stream import open_stream_engine

    resolved, engine = open_stream_engine(model, runtime, threads=1)
    x = _song(seconds, engine.sample_rate)
    out = np.empty((len(engine.stems), engine.channels, BLOCK), np.float32)
    for i in range(0, 40 * BLOCK, BLOCK):  # warm-up, then a fresh stream
        engine.process(x[:, i:i + BLOCK], out)
    engine.reset()
    times, own = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, x.shape[1] - BLOCK + 1, BLOCK):
        begin, begin_cpu = time.perf_counter(), time.thread_time()
        engine.process(x[:, i:i + BLOCK], out)
        times.append(time.perf_counter() - begin)
        own.append(time.thread_time() - begin_cpu)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ms, cpu_ms = 1e3 * np.asarray(times), 1e3 * np.asarray(own)
    audio = len(times) * BLOCK / engine.sample_rate
    block_ms = 1e3 * BLOCK / engine.sample_rate
    return {"runtime": resolved.runtime, "latency_samples": engine.latency_samples,
            "latency_ms": round(1e3 * engine.latency_samples / engine.sample_rate, 2), "block": BLOCK,
            "block_ms": round(block_ms, 2), "compute_ms_p50": round(float(np.percentile(ms, 50)), 3),
            "compute_ms_p99": round(float(np.percentile(ms, 99)), 3), "compute_ms_max": round(float(ms.max()), 3),
            # the CPU time the block's thread used: the cost without the wait for a core (a busy machine)
            "cpu_ms_p50": round(float(np.percentile(cpu_ms, 50)), 3),
            "cpu_ms_p99": round(float(np.percentile(cpu_ms, 99)), 3),
            "p99_within_half_block": bool(np.percentile(ms, 99) <= block_ms / 2),
            "blocks_over_deadline": int((ms > block_ms).sum()), "blocks": len(times),
            "realtime_factor": round(audio / wall, 1), "cpu_percent_realtime": round(100 * cpu / audio, 1),
            "_ms": ms}


def histogram(rows: dict[str, dict], path: Path = HISTOGRAM) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    top = max(max(r["_ms"].max() for r in rows.values()), rows[next(iter(rows))]["block_ms"]) * 1.05
    bins = np.linspace(0, top, 80)
    for label, row in rows.items():
        ax.hist(row["_ms"], bins=bins, alpha=0.6, label=f"{label}: p50 {row['compute_ms_p50']:.2f} ms, "
                f"p99 {row['compute_ms_p99']:.2f} ms")
    block_ms = next(iter(rows.values()))["block_ms"]
    ax.axvline(block_ms, color="k", linestyle="-", linewidth=1, label=f"block ({block_ms:.1f} ms): the deadline")
    ax.axvline(block_ms / 2, color="k", linestyle="--", linewidth=1, label="half the block")
    ax.set_yscale("log")
    ax.set_xlabel(f"compute time per {BLOCK}-sample block (ms)")
    ax.set_ylabel("blocks")
    ax.set_title("stemsplit stream: one stream, one thread, this CPU", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(report: dict) -> None:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, runtime) in _models(Path(tmp)).items():
            rows[label] = measure(model, runtime)
            r = rows[label]
            print(f"  {label:40s} latency {r['latency_ms']:.1f} ms ({r['latency_samples']} samples)"
                  f"  block {r['block_ms']:.1f} ms: compute p50 {r['compute_ms_p50']:.2f} ms, p99 "
                  f"{r['compute_ms_p99']:.2f} ms, max {r['compute_ms_max']:.2f} ms (CPU time p50 {r['cpu_ms_p50']:.2f},"
                  f" p99 {r['cpu_ms_p99']:.2f} ms)  x{r['realtime_factor']} real "
                  f"time, CPU {r['cpu_percent_realtime']:.1f} % of a core", flush=True)
    print(f"  histogram: {histogram(rows)}")
    report["stream"] = {label: {k: v for k, v in r.items() if not k.startswith("_")} for label, r in rows.items()}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    out: dict = {}
    run(out)
