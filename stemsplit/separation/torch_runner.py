"""``NetworkRunner`` on torch: a ``SeparationModel`` behind the engine's numpy seam.

The only separation module that imports torch. It moves arrays to the model's device, runs
the model's contract methods (``stem_magnitudes`` / ``stem_waveforms``) under inference mode,
and hands float32 numpy arrays back.
"""
from __future__ import annotations

import numpy as np
import torch

from stemsplit.checkpoint import LoadedModel
from stemsplit.config import Config
from stemsplit.separation.engine import Engine
from stemsplit.settings import EngineSettings, pick_device


class TorchRunner:
    """Runs ``model`` on ``device`` (a name such as "auto"/"cpu"/"cuda:0", or a torch.device).

    The model's train/eval mode is left as it is: callers put it in eval mode.
    """

    def __init__(self, model: torch.nn.Module, config: Config, device: str | torch.device = "cpu"):
        self.device = pick_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device)
        self.config = config
        self.spectral = bool(model.spectral)

    def context_frames(self) -> int | None:
        return self.model.context_frames()

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @staticmethod
    def _array(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to("cpu", torch.float32).numpy()

    def stem_magnitudes(self, mag: np.ndarray) -> np.ndarray:
        """(B, C, F, T) float32 -> (B, S, C, F, T) float32."""
        with torch.inference_mode():
            mix_mag = self._tensor(mag)
            return self._array(self.model.stem_magnitudes(mix_mag, mix_mag))

    def stem_waveforms(self, wav: np.ndarray) -> np.ndarray:
        """(B, C, L) float32 -> (B, S, C, L) float32."""
        with torch.inference_mode():
            return self._array(self.model.stem_waveforms(self._tensor(wav)))


def torch_engine(loaded: LoadedModel, settings: EngineSettings | None = None) -> Engine:
    """The engine around a loaded checkpoint, on ``settings.device``."""
    settings = (settings or EngineSettings()).checked()
    return Engine(TorchRunner(loaded.model, loaded.config, settings.device), settings)
