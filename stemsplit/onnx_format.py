"""The stemsplit ONNX file: names and metadata shared by the exporter and the ONNX runner.

One ``.onnx`` file holds the network alone (no STFT, no Wiener step) and, in the model's
``metadata_props`` under the key ``stemsplit``, one JSON object::

    {"format": 1, "config": {...config_to_dict...}, "input_kind": "magnitude" | "waveform",
     "output_kind": "masks" | "spectrograms" | "waveforms", "context_frames": int | null,
     "stems": [...], "sample_rate": 44100, "weights_dtype": "float32" | "float16",
     "ensemble": {"members": [...], "weights": [[...]]} (models that combine members),
     "meta": {...the checkpoint's meta: recipe, training data, licence, scores...},
     "shared_weights": {...} (shipped files only, see below),
     "stream": {...} (causal models only, see below)}

Graph: input ``magnitude`` (B, C, F, T) or ``waveform`` (B, C, L) float32; output named after
``output_kind``: (B, S, C, F, T) or (B, S, C, L). Batch and frame (sample) axes are dynamic.

A causal model (one that streams, ``is_causal()``) is exported as its streaming step: after
``magnitude`` the graph takes one input per recurrent state tensor, ``state_in_<i>``, and after
its output it gives the state after the frames, ``state_out_<i>``. Zero states make it the offline
network (the ONNX runner feeds them per segment); the streaming engine feeds each step the state
the previous one gave. ``stream`` records, per state tensor, its ``input`` and ``output`` names,
its ``shape`` for batch 1 and the ``batch_axis`` that grows with the batch (its size there is
batch times the recorded one), and the model's ``lookahead_frames``, ``n_fft``, ``hop_length`` and
``latency_samples`` (n_fft - 1 + hop * lookahead: what ``stemsplit stream`` declares).

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
STREAM_KEY = "stream"  # the metadata entry of a causal model's streaming step


def state_names(index: int) -> tuple[str, str]:
    """The graph's input and output names of recurrent state tensor ``index``."""
    return f"state_in_{index}", f"state_out_{index}"


def stream_latency(n_fft: int, hop_length: int, lookahead_frames: int) -> int:
    """Samples from an input sample to its separated output: the causal STFT's window (the newest
    frame ends at the newest sample, so an output sample is final once the frame that starts
    with it is in: n_fft - 1 samples later) plus the model's look-ahead frames."""
    return n_fft - 1 + hop_length * lookahead_frames
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
