"""`stemsplit export`: a shipped model or a checkpoint -> one ONNX file, checked against torch.

The file (``onnx_format.py``) holds the network and the model's metadata; ``separate
--runtime onnx`` and ``load_onnx_runner`` run it without torch. After writing, the file is
loaded on ONNX Runtime and its output compared with torch's on a generated input at two
lengths; a file that disagrees is removed and the export fails.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stemsplit.errors import CheckpointError
from stemsplit.onnx_export import EXAMPLE_FRAMES, Exported, ExportError, example_input, export_onnx
from stemsplit.resolver import load_torch

TOLERANCE = 1e-4  # largest |ONNX - torch| of a mask or output accepted (float32 summation order)
INT8_MIN_DB = 40.0  # int8 LSTMs: each stem's output within this many dB of torch's (the runtimes' stem bar)


@dataclass
class ExportReport:
    exported: Exported
    max_difference: float  # largest |ONNX Runtime - torch| over the check inputs
    name: str
    int8_lstms: int = 0  # LSTMs given int8 weights (--int8)
    int8_agreement_db: float | None = None  # then: the worst stem's agreement with torch, in dB


def torch_output(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """What separation takes from the network, on torch: ``export_module()``'s output."""
    with torch.inference_mode():
        return model.export_module().eval()(x).numpy()


def check_against_torch(loaded, path: Path,
                        frames: tuple[int, ...] = (EXAMPLE_FRAMES // 2, EXAMPLE_FRAMES + 13)) -> float:
    """Largest |ONNX Runtime - torch| of the raw graph output at ``frames`` lengths, batch 2."""
    from stemsplit.separation.onnx_runner import load_onnx_runner

    runner = load_onnx_runner(path, threads=1)
    worst = 0.0
    for i, n in enumerate(frames):
        x = example_input(loaded, frames=n, seed=i + 1)
        got = runner._run(x.numpy())
        want = torch_output(loaded.model, x)
        if got.shape != want.shape:
            raise ExportError(f"{path}: ONNX output shape {got.shape} differs from torch's {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def agreement_with_torch(loaded, path: Path, seconds: float = 30.0) -> float:
    """The worst stem's agreement of ONNX Runtime's stems with torch's, in dB, on a generated song
    (``seconds`` long, so that it spans segments): 10 log10 of the torch stem's energy over the
    difference's, the measure of the runtimes' stem bar."""
    from stemsplit.data.synth import generate_song
    from stemsplit.separation.engine import Engine
    from stemsplit.separation.onnx_runner import load_onnx_runner
    from stemsplit.separation.torch_runner import torch_engine

    mix = generate_song(0, 0, seconds, loaded.config.audio.sample_rate).mixture[: loaded.config.audio.channels]
    want = torch_engine(loaded).separate(mix).astype(np.float64)       # (S, C, L)
    got = Engine(load_onnx_runner(path, threads=1)).separate(mix)
    signal = (want ** 2).sum(axis=(1, 2))
    error = ((got - want) ** 2).sum(axis=(1, 2))
    return float(np.min(10 * np.log10(np.maximum(signal, 1e-30) / np.maximum(error, 1e-30))))


def quantize_checked(loaded, path: Path) -> tuple[int, float]:
    """``path`` rewritten with int8 LSTM weights (``onnx_int8.py``), kept only if every stem still
    agrees with torch at ``INT8_MIN_DB``; (LSTMs changed, the worst stem's agreement in dB)."""
    from stemsplit.onnx_int8 import quantize_lstms

    count = quantize_lstms(path, path)
    if count == 0:
        raise ExportError(f"{path}: --int8: this model has no LSTM; export it without the flag")
    worst = agreement_with_torch(loaded, path)
    if worst < INT8_MIN_DB:
        path.unlink(missing_ok=True)  # whoever asked (export, the packaging script) is left no file under the bar
        raise ExportError(f"{path}: with int8 LSTMs a stem agrees with torch at only {worst:.1f} dB "
                          f"(< {INT8_MIN_DB:.0f}); the file was removed: export this model without --int8")
    return count, worst


def export_model(model: str | None, out: str | Path, fp16_weights: bool = False,
                 share_weights_with: str | Path | None = None, check: bool = True,
                 int8_lstm: bool = False) -> ExportReport:
    """Export ``model`` (shipped name, checkpoint path or None for the default) to ``out``; with
    ``int8_lstm``, then give its LSTMs int8 weights (always checked against torch)."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"--out {out}: give the file an .onnx suffix")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name ending in .onnx")
    if model is not None and Path(model).suffix.lower() == ".onnx":
        raise CheckpointError(f"{model} is already an ONNX model; export takes a shipped name or a .ckpt")
    loaded = load_torch(model)
    exported = export_onnx(loaded, out, fp16_weights=fp16_weights, share_weights_with=share_weights_with)
    worst, int8_lstms, agreement = 0.0, 0, None
    try:
        if check:
            worst = check_against_torch(loaded, out)
            # fp16-stored weights of an fp32 model change the numbers on purpose; the check is for
            # the graph, so it holds only where the weights are exact
            exact = not fp16_weights or loaded.meta.get("weights_dtype") == "float16"
            if exact and worst > TOLERANCE:
                raise ExportError(f"{out}: ONNX Runtime and torch differ by {worst:.2g} (> {TOLERANCE}); "
                                  "the file was removed: report this model's export as a bug")
        if int8_lstm:
            int8_lstms, agreement = quantize_checked(loaded, out)
            exported.size_bytes = out.stat().st_size
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    name = model or loaded.meta.get("name") or "default"
    return ExportReport(exported, worst, str(name), int8_lstms, agreement)
