"""Run an exported model (``stemsplit export``, or a shipped ``.onnx``) on ONNX Runtime.

``OnnxRunner`` is the ``NetworkRunner`` (``runner.py``) of the torch-free install: the file's
metadata gives back the model's config (STFT, stems, rate, separation defaults), and the
session maps numpy arrays to numpy arrays. Imports numpy and onnxruntime, never torch.
A causal model's file is its streaming step (``onnx_format.py``): here every call starts from the
zero state, which makes it the offline network; ``stream_step()`` runs it frame by frame instead.
Shape letters: B batch, C channels, F frequency bins, T frames, S stems, L samples.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from stemsplit.config import Config, ConfigError, config_from_dict
from stemsplit.errors import CheckpointError, ModelError, install_extra
from stemsplit.onnx_format import FORMAT_VERSION, INPUT_NAMES, META_KEY, OUTPUT_KINDS, STREAM_KEY, stale_entries


class OnnxRunner:
    """The network of one exported model on an ONNX Runtime CPU session.

    One session serves every call; ONNX Runtime's ``run`` may be called from several threads at once.
    """

    def __init__(self, session, config: Config, info: dict, path: Path):
        self.session, self.config, self.info, self.path = session, config, info, path
        self.input_kind: str = info["input_kind"]
        self.output_kind: str = info["output_kind"]
        self.spectral = self.input_kind != "waveform"
        self.mask_output = self.output_kind == "masks"  # the engine applies them (stem_masks)
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    @property
    def meta(self) -> dict:
        """The checkpoint's metadata at export time (recipe, training data, licence, scores)."""
        return self.info.get("meta", {})

    def context_frames(self) -> int | None:
        return self.info.get("context_frames")

    def _run(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(B, ...) -> (B, S, ...): every output kind adds the stem axis after the batch. The output is
        bound to an array of ours (``out`` when given), so the runtime writes it there: no copy out of
        its arena, and no 28 MB arena block per 10-s segment of the default model."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = (x.shape[0], len(self.config.stems)) + x.shape[1:]
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ModelError(f"{self.path.name}: out must be a C-contiguous float32 array of shape {shape}, "
                             f"got {out.dtype} {out.shape}")
        binding = self.session.io_binding()
        binding.bind_cpu_input(self._input, x)
        binding.bind_output(self._output, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        for state in self.info.get(STREAM_KEY, {}).get("state", []):  # a causal model: from the zero state
            shape = list(state["shape"])
            shape[state["batch_axis"]] *= x.shape[0]
            binding.bind_cpu_input(state["input"], np.zeros(shape, np.float32))
            binding.bind_output(state["output"], "cpu")  # the state after: not needed here
        self.session.run_with_iobinding(binding)
        return out

    def stream_step(self):
        """The model's streaming step on this session (``OnnxStreamStep``); ModelError when it is not causal."""
        from stemsplit.separation.onnx_stream import OnnxStreamStep

        if STREAM_KEY not in self.info:
            raise ModelError(f"{self.path.name}: not a streaming model (it is not causal, or was exported before "
                             "stemsplit streamed: re-export its checkpoint with stemsplit export)")
        return OnnxStreamStep(self.session, self.config, self.info)

    def stem_magnitudes(self, mag: np.ndarray) -> np.ndarray:
        """(B, C, F, T) float32 |STFT| -> (B, S, C, F, T) float32 stem magnitudes."""
        if not self.spectral:
            raise ModelError(f"{self.path.name}: a waveform model has no stem magnitudes; call stem_waveforms")
        out = self._run(mag)
        if self.output_kind == "masks":
            out *= np.asarray(mag, dtype=np.float32)[:, None]  # a mask scales the mixture's magnitude
        return out

    def stem_masks(self, mag: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(B, C, F, T) float32 |STFT| -> (B, S, C, F, T) float32 masks (``mask_output`` files only),
        written into ``out`` when given."""
        if not self.mask_output:
            raise ModelError(f"{self.path.name}: its network gives {self.output_kind}, not masks; call stem_magnitudes")
        return self._run(mag, out)

    def stem_waveforms(self, wav: np.ndarray) -> np.ndarray:
        """(B, C, L) float32 -> (B, S, C, L) float32."""
        if self.spectral:
            raise ModelError(f"{self.path.name}: a spectral model maps magnitudes; call stem_magnitudes")
        return self._run(wav)


def _metadata(session, path: Path) -> dict:
    raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is an ONNX model but not a stemsplit export (no {META_KEY!r} metadata); "
                              "write one with `stemsplit export --model NAME -o FILE.onnx`")
    try:
        info = json.loads(raw)
    except ValueError:
        raise CheckpointError(f"{path}: its {META_KEY!r} metadata is not JSON; re-export the model") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
        found = info.get("format") if isinstance(info, dict) else "?"
        raise CheckpointError(f"{path} has stemsplit ONNX format {found}"
                              f", this stemsplit reads format {FORMAT_VERSION}; re-export the model")
    if info.get("input_kind") not in INPUT_NAMES or info.get("output_kind") not in OUTPUT_KINDS:
        raise CheckpointError(f"{path}: unknown input/output kind {info.get('input_kind')!r} -> "
                              f"{info.get('output_kind')!r}; re-export it with this stemsplit")
    return info


def _check_shared_weights(info: dict, path: Path) -> None:
    """A file whose weights live in a checkpoint beside it: that checkpoint must be the one exported."""
    shared = info.get("shared_weights")
    if not shared:
        return
    weights = path.parent / shared["file"]
    if stale_entries(weights, shared.get("entries", {})):
        raise CheckpointError(f"{path}: its weights file {weights.name} is missing or changed since the export; "
                              "re-export it (scripts/package_models.py onnx for the shipped models)")


def default_threads() -> int:
    """The network's CPU threads when none are asked for: every core this process may run on.

    The engine's own thread (STFT, masking, iSTFT, writing) shares them: ONNX Runtime's idle
    threads sleep rather than spin, so the engine's work fills the gaps. On 2 cores, with the
    int8 default model and the engine's mask path, two network threads beat one both on a quiet
    machine (3-minute song: 2.19 s against 2.41 s, medians of 5) and beside two busy processes
    (3.68 s against 4.27 s, medians of 3); docs/benchmarks.md, speed levers. Cores outside the
    process's affinity mask (taskset, a container's cpuset) are not counted."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def load_onnx_runner(path: str | Path, threads: int | None = None) -> OnnxRunner:
    """An ``OnnxRunner`` for ``path``, on ``threads`` CPU threads (default: ``default_threads()``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("the ONNX runtime needs onnxruntime: pip install onnxruntime "
                         f"(or run on torch: --runtime torch, with {install_extra('train')})") from None
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}" if not path.exists() else
                              f"{path} is a folder, not an ONNX model file")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads: must be >= 1, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: a user sees ours, not the runtime's warnings
    # no memory pattern: it plans one arena block per run for every intermediate tensor at once
    # (~100 MB more peak RSS on a 10-s segment of the default model), for no measurable speed
    opts.enable_mem_pattern = False
    # idle worker threads sleep instead of spinning: the engine runs the network on a thread of its
    # own beside its numpy work (engine.stream), and spinning threads would take the cores that work
    # needs (measured: 3.66-4.23 -> 3.30 s for a 3-min song on 2 cores, 1.5 s less CPU)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes for a bad protobuf, graph or data file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} is not a readable ONNX model (truncated, corrupt, or its weights file is "
                              f"missing: {reason[:160]}); re-export or re-install it") from None
    info = _metadata(session, path)
    _check_shared_weights(info, path)
    try:
        # the model section stays a plain dict: building its params would import the model files (torch)
        config = config_from_dict(info["config"], model_params=False)
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: its config is not valid for this stemsplit ({exc}); re-export it") from None
    if session.get_inputs()[0].name != INPUT_NAMES[info["input_kind"]]:
        raise CheckpointError(f"{path}: its graph input is {session.get_inputs()[0].name!r}, not "
                              f"{INPUT_NAMES[info['input_kind']]!r}; re-export it with stemsplit export")
    return OnnxRunner(session, config, info, path)
