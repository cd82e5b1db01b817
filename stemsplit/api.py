"""The public Python API of stemsplit.

    import stemsplit
    sep = stemsplit.Separator()                     # the default model; or Separator("NAME"), Separator("x.ckpt")
    stems = sep.separate(audio, sample_rate)        # {stem: (channels, samples) float32}
    sep.separate_file("song.mp3", "stems/")         # the files `stemsplit separate` writes

Every error a caller can fix is a ``StemsplitError`` with a one-line message.
"""
from __future__ import annotations

from stemsplit.errors import StemsplitError
from stemsplit.pipelines.separator import SeparateError, Separator

__all__ = ["Separator", "StemsplitError", "SeparateError"]
