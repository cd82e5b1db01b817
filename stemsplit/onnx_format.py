"""The stemsplit ONNX file: names and metadata shared by the exporter and the ONNX runner.

One ``.onnx`` file holds the network alone (no STFT, no Wiener step) and, in the model's
``metadata_props`` under the key ``stemsplit``, one JSON object::

    {"format": 1, "config": {...config_to_dict...}, "input_kind": "magnitude" | "waveform",
     "output_kind": "masks" | "spectrograms" | "waveforms", "context_frames": int | null,
     "stems": [...], "sample_rate": 44100, "weights_dtype": "float32" | "float16",
     "ensemble": {"members": [...], "weights": [[...]]} (models that combine members),
     "meta": {...the checkpoint's meta: recipe, training data, licence, scores...},
     "shared_weights": {...} (shipped files only, see below)}

Graph: input ``magnitude`` (B, C, F, T) or ``waveform`` (B, C, L) float32; output named after
``output_kind``: (B, S, C, F, T) or (B, S, C, L). Batch and frame (sample) axes are dynamic.

Shipped files share their weights with the checkpoint beside them: the fp16 initializers are
ONNX external data pointing at the tensors inside the ``.ckpt`` (a zip whose entries torch
stores uncompressed), and Cast nodes that ONNX Runtime folds at load give the float32 weights
the torch path computes with. ``shared_weights`` records the file and, per zip entry used, its
data offset, length and CRC, so that a checkpoint rewritten after the export is refused rather
than read at the wrong offsets. This module uses the standard library only (no torch, no onnx).
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

FORMAT_VERSION = 1
META_KEY = "stemsplit"
OPSET = 17
INPUT_NAMES = {"magnitude": "magnitude", "waveform": "waveform"}  # input_kind -> graph input name
OUTPUT_KINDS = ("masks", "spectrograms", "waveforms")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes


def zip_entries(path: str | Path) -> dict[str, list[int]]:
    """Each uncompressed entry of a zip file (a torch checkpoint): name -> [data offset, length, CRC32].

    Compressed entries are left out (their bytes are not the tensor's)."""
    out = {}
    with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.is_dir():
                continue
            fh.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
            name_len, extra_len = fields[-2], fields[-1]
            out[info.filename] = [info.header_offset + _LOCAL_HEADER.size + name_len + extra_len,
                                  info.file_size, info.CRC]
    return out


def stale_entries(weights_file: str | Path, recorded: dict[str, list[int]]) -> list[str]:
    """The recorded entries that the weights file no longer holds at the same place with the same CRC."""
    try:
        now = zip_entries(weights_file)
    except (OSError, zipfile.BadZipFile):
        return list(recorded)
    return [name for name, where in recorded.items() if now.get(name) != list(where)]
