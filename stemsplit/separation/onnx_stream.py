"""A causal model's streaming step on ONNX Runtime: one frame per run, nothing allocated per run.

The exported graph (``onnx_format.py``) maps ``magnitude`` and ``state_in_<i>`` to the output and
``state_out_<i>``. Two banks of state arrays and two IO bindings are made once: binding A reads
bank 0 and writes bank 1, binding B the other way round, so each run's state after is the next
run's state before without a copy, and every input and output is an array of ours that ONNX
Runtime reads and writes in place. Imports numpy only (the session comes from ``onnx_runner``).
"""
from __future__ import annotations

import numpy as np

from stemsplit.config import Config
from stemsplit.onnx_format import STREAM_KEY


class OnnxStreamStep:
    """``StreamStep`` (``stream_step.py``) of one ONNX Runtime session, batch 1, one frame a run."""

    def __init__(self, session, config: Config, info: dict):
        stream = info[STREAM_KEY]
        self.session, self.config = session, config
        self.output_kind: str = info["output_kind"]
        self.lookahead_frames = int(stream.get("lookahead_frames", 0))
        c, f, s = config.audio.channels, config.n_bins, len(config.stems)
        self.mag = np.zeros((1, c, f, 1), np.float32)
        self.out = np.zeros((1, s, c, f, 1), np.float32)
        specs = stream["state"]
        self._banks = [[np.zeros(spec["shape"], np.float32) for spec in specs] for _ in range(2)]
        input_name = session.get_inputs()[0].name
        output_name = session.get_outputs()[0].name
        self._bindings = []
        for src, dst in ((0, 1), (1, 0)):
            binding = session.io_binding()
            _bind(binding.bind_input, input_name, self.mag)
            _bind(binding.bind_output, output_name, self.out)
            for spec, before, after in zip(specs, self._banks[src], self._banks[dst]):
                _bind(binding.bind_input, spec["input"], before)
                _bind(binding.bind_output, spec["output"], after)
            self._bindings.append(binding)
        self._turn = 0

    def run(self) -> None:
        self.session.run_with_iobinding(self._bindings[self._turn])
        self._turn ^= 1

    def reset(self) -> None:
        for bank in self._banks:
            for array in bank:
                array[...] = 0.0
        self._turn = 0

    def buffers(self) -> list[np.ndarray]:
        """Every array the step reads or writes (the tests check that they stay the same ones)."""
        return [self.mag, self.out, *self._banks[0], *self._banks[1]]


def _bind(method, name: str, array: np.ndarray) -> None:
    """Bind ``array`` (float32, C-contiguous, kept alive by the step) as ``name`` on the CPU."""
    method(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
