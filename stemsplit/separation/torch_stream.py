"""A causal model's streaming step on torch (``StreamStep``, see ``stream_step.py``).

``mag`` is shared with a CPU tensor (``torch.from_numpy``), so the engine's writes are the
model's input without a copy; the output is copied into ``out``. The state is the tuple that the
model's ``forward_stream`` gives back, passed to the next call.
"""
from __future__ import annotations

import numpy as np
import torch

from stemsplit.config import Config


class TorchStreamStep:
    def __init__(self, model: torch.nn.Module, config: Config, device: torch.device | str = "cpu"):
        self.model, self.config = model.eval(), config
        self.device = torch.device(device)
        self.output_kind: str = model.exported_output_kind
        self.lookahead_frames = int(model.lookahead_frames())
        c, f, s = config.audio.channels, config.n_bins, len(config.stems)
        self.mag = np.zeros((1, c, f, 1), np.float32)
        self.out = np.zeros((1, s, c, f, 1), np.float32)
        self._mag = torch.from_numpy(self.mag)  # the same memory
        self.reset()

    def run(self) -> None:
        with torch.inference_mode():
            out, *state = self.model.forward_stream(self._mag.to(self.device), *self._state)
            self._state = tuple(state)
            np.copyto(self.out, out.to("cpu", torch.float32).numpy())

    def reset(self) -> None:
        with torch.inference_mode():
            self._state = tuple(self.model.stream_state(1))

    def buffers(self) -> list[np.ndarray]:
        return [self.mag, self.out]
