"""The seam between the streaming engine and a causal network: one STFT frame in, one out.

A ``StreamStep`` owns its buffers. The engine writes the newest frame's mixture magnitude into
``mag`` (1, C, F, 1), calls ``run()``, and reads the network's output for one frame from ``out``
(1, S, C, F, 1): masks, or magnitudes where ``output_kind`` is ``spectrograms``. The recurrent
state stays inside the step, carried from one ``run`` to the next; ``reset()`` returns it to zero.
A model with look-ahead answers frame j with frame j - ``lookahead_frames``'s output.

Implementations: ``OnnxStreamStep`` (``onnx_stream.py``, ONNX Runtime, no torch) and
``TorchStreamStep`` (``torch_stream.py``). ``open_stream_step`` picks one for a separation
runner. This module imports numpy only.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from stemsplit.config import Config
from stemsplit.errors import ModelError

STREAM_OUTPUT_KINDS = ("masks", "spectrograms")


@runtime_checkable
class StreamStep(Protocol):
    config: Config
    output_kind: str
    lookahead_frames: int
    mag: np.ndarray   # (1, C, F, 1) float32, written by the engine before ``run``
    out: np.ndarray   # (1, S, C, F, 1) float32, the network's output after ``run``

    def run(self) -> None:
        """One frame through the network: ``mag`` -> ``out``, the state advanced."""
        ...

    def reset(self) -> None:
        """Back to the zero state (the start of a new stream)."""
        ...


def not_streaming(name: str) -> ModelError:
    return ModelError(f"model {name!r} is not causal, so it cannot stream; use a streaming model "
                      "(stemsplit separate --list-models marks them) or train one (configs/crnn_causal.yaml)")


def open_stream_step(runner) -> StreamStep:
    """The streaming step of a separation runner's model (an ``OnnxRunner`` or a ``TorchRunner``)."""
    if hasattr(runner, "stream_step"):
        step = runner.stream_step()
    else:
        model = getattr(runner, "model", None)
        if model is None or not model.is_causal():
            raise not_streaming(runner.config.model.name)
        from stemsplit.separation.torch_stream import TorchStreamStep

        step = TorchStreamStep(model, runner.config, runner.device)
    if step.output_kind not in STREAM_OUTPUT_KINDS:
        raise ModelError(f"model {runner.config.model.name!r} gives {step.output_kind}; streaming needs masks or "
                         "spectrograms")
    return step
