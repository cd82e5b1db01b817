"""`stemsplit export`: flags -> pipelines.export; prints what was written and the parity check."""
from __future__ import annotations

from pathlib import Path

import typer

from stemsplit.cli.common import TRAIN_MODULES, app, console, require_extra, user_errors


@app.command()
def export(
    model: str | None = typer.Option(None, "--model", "-m",
                                        help="Shipped model name or a .ckpt path (default: the default model)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write (replaced atomically)."),
    fp16_weights: bool = typer.Option(False, "--fp16-weights",
                                      help="Store the weights as float16 (half the file; computes in float32)."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Compare ONNX Runtime with torch on a generated input after writing."),
    int8_lstm: bool = typer.Option(False, "--int8",
                                   help="Store the LSTM weights as int8 (faster on a CPU); kept only if every "
                                        "stem agrees with torch at 40 dB or more."),
) -> None:
    """Write a model's network and metadata as one ONNX file, for `separate --runtime onnx`."""
    require_extra("export", *TRAIN_MODULES, "onnx")
    with user_errors():
        from stemsplit.pipelines.export import export_model  # torch: after the extra check

        report = export_model(model, out, fp16_weights=fp16_weights, check=check, int8_lstm=int8_lstm)
    e = report.exported
    checked = f", ONNX Runtime vs torch max |diff| {report.max_difference:.1e}" if check else ""
    if report.int8_lstms:
        checked += (f"; {report.int8_lstms} LSTM(s) int8, the worst stem within "
                    f"{report.int8_agreement_db:.1f} dB of torch")
    console.print(f"wrote {e.path} ({e.size_bytes / 1e6:.1f} MB, {e.input_kind} -> {e.output_kind}, "
                  f"{e.weights_dtype} weights{checked})", markup=False)
