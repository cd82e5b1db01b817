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


@dataclass
class ExportReport:
    exported: Exported
    max_difference: float  # largest |ONNX Runtime - torch| over the check inputs
    name: str


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


def export_model(model: str | None, out: str | Path, fp16_weights: bool = False,
                 share_weights_with: str | Path | None = None, check: bool = True) -> ExportReport:
    """Export ``model`` (shipped name, checkpoint path or None for the default) to ``out``."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"--out {out}: give the file an .onnx suffix")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name ending in .onnx")
    if model is not None and Path(model).suffix.lower() == ".onnx":
        raise CheckpointError(f"{model} is already an ONNX model; export takes a shipped name or a .ckpt")
    loaded = load_torch(model)
    exported = export_onnx(loaded, out, fp16_weights=fp16_weights, share_weights_with=share_weights_with)
    worst = 0.0
    if check:
        try:
            worst = check_against_torch(loaded, out)
            # fp16-stored weights of an fp32 model change the numbers on purpose; the check is for
            # the graph, so it holds only where the weights are exact
            exact = not fp16_weights or loaded.meta.get("weights_dtype") == "float16"
            if exact and worst > TOLERANCE:
                raise ExportError(f"{out}: ONNX Runtime and torch differ by {worst:.2g} (> {TOLERANCE}); "
                                  "the file was removed: report this model's export as a bug")
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    name = model or loaded.meta.get("name") or "default"
    return ExportReport(exported, worst, str(name))
