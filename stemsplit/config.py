"""Typed configuration: YAML files in ``configs/`` become nested dataclasses.

Every section is a dataclass; unknown keys, wrong types and unknown model names raise
``ConfigError`` with a one-line message that lists the valid choices. ``--set a.b=value``
overrides are applied to the raw mapping before validation, so they get the same checks.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stemsplit.atomic import write_text_atomic
from stemsplit.errors import ConfigError  # re-exported: config users import it from here

STEMS = ("vocals", "drums", "bass", "other")
CROSSFADES = ("margin", "triangle", "linear_fade")  # separate.crossfade: how the engine blends segments




# --- sections ----------------------------------------------------------------------------


@dataclass
class AudioConfig:
    sample_rate: int = 44100
    channels: int = 2


@dataclass
class STFTConfig:
    n_fft: int = 4096
    hop_length: int = 1024
    window: str = "hann"  # the only window; kept because shipped checkpoints and ONNX files name it


@dataclass
class ModelConfig:
    """``name`` picks the architecture; ``params`` holds that architecture's own fields.

    In YAML the params sit beside the name: ``model: {name: <architecture>, hidden_size: 256}``.
    """

    name: str = ""
    params: Any = None

    def __post_init__(self) -> None:
        if not self.name:  # the default architecture, with its default params
            from stemsplit.models import DEFAULT_ARCHITECTURE

            self.name = DEFAULT_ARCHITECTURE
        if self.params is None:
            from stemsplit.models import model_class

            self.params = model_class(self.name).params_class()


@dataclass
class SeparateConfig:
    segment_seconds: float = 10.0
    overlap: float = 0.25
    wiener_iterations: int = 0  # this model's default post-filter; --wiener-iterations overrides
    # stems that take the Wiener estimate when it runs; the others keep plain masking. Empty: all
    wiener_stems: list[str] = field(default_factory=list)
    # the Wiener EM's conventions (separation/wiener.py): frames filtered independently (0: the
    # whole segment), the mixture's scale max(1, max|X| / divisor), the covariance's diagonal
    # loading. A publisher's model sets its own (Open-Unmix: 300, 10.0, 1e-5)
    wiener_window_frames: int = 0
    wiener_scale_divisor: float = 1.0
    wiener_load: float = 1e-10
    # how segments are cut and blended (separation/engine.py): "margin" (hop-aligned segments,
    # zero-weight margins, linear ramps) or "triangle" (Demucs' apply_model: segments of exactly
    # segment_seconds padded with the mixture around them, a triangle ** transition_power weight,
    # and shifts as random offsets of up to 0.5 s from a seeded generator) or "linear_fade" (MSST's
    # demix for the RoFormers: reflect-padded ends, linear fades of segment / 10, averaged)
    crossfade: str = "margin"
    transition_power: float = 1.0
    shifts: int = 0  # the model's default --shifts; the flag overrides


@dataclass
class AugmentConfig:
    random_mix: bool = True
    gain_db: float = 3.0  # per-stem gain drawn from [-gain_db, +gain_db]
    channel_swap: bool = True
    drop_silent: bool = True
    silence_db: float = -60.0
    pitch_shift_semitones: float = 0.0  # 0 disables; else a shift in [-x, x]
    time_stretch: float = 0.0  # 0 disables; else a rate in [1-x, 1+x]
    warp_probability: float = 1.0  # share of excerpts that get the pitch/tempo warp (Demucs: 0.2)
    stem_dropout: float = 0.0  # chance that each stem is silent in an excerpt (never all of them)
    # one chance per stem, in the order of `stems`, instead of stem_dropout's one for all: e.g.
    # [0.5, 0, 0, 0] makes half the excerpts instrumentals without silencing the others
    stem_dropout_per_stem: list[float] = field(default_factory=list)


@dataclass
class DataConfig:
    excerpt_seconds: float = 6.0
    samples_per_epoch: int = 2000
    num_workers: int = 0
    extra: list[str] = field(default_factory=list)  # additional prepared datasets for training
    # sampling share of each training dataset (--data first, then extra); empty: by duration
    weights: list[float] = field(default_factory=list)
    # a final fit: --data's valid split is trained on too (the extra datasets' valid splits stay
    # held out). Its validation scores then measure nothing held out and choose nothing (best.ckpt
    # is the latest validated step): fix the step count from a run without it
    train_on_valid: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class TrainConfig:
    seed: int = 42
    batch_size: int = 16
    epochs: int = 100
    max_steps: int = 0  # 0: no cap
    lr: float = 1e-3
    weight_decay: float = 1e-5
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_steps: int = 100
    grad_clip: float = 5.0
    loss: str = "auto"  # auto | bce | mse | l1 | mrstft | affinity (embeddings models)
    time_loss_weight: float = 0.0
    # --- extra loss terms (training/loss_terms.py); 0 / false: off
    wsdr_weight: float = 0.0  # weighted SDR of the waveform estimates (through the iSTFT)
    combination_loss: bool = False  # also score every sum of 1..S-1 stems (CrossNet-Open-Unmix)
    mixture_consistency_weight: float = 0.0  # the stems' estimates must add up to the mixture
    init_from: str = ""  # a checkpoint of the same architecture to start from (fine-tuning)
    val_every_steps: int = 0  # 0: once per epoch
    checkpoint_every_steps: int = 100
    early_stopping_patience: int = 0  # validations without improvement; 0 disables
    amp: str = "none"  # none | bf16 | fp16 (CUDA only)
    compile: bool = False
    tensorboard: bool = False
    mask_threshold: float = 0.5  # T in the binary target B = S > T * M (binary-mask models)
    plateau_factor: float = 0.5  # schedule plateau: multiply the rate by this ...
    plateau_patience: int = 3  # ... after this many validations without improvement
    log_every_steps: int = 10  # plain log lines and metrics.csv train rows
    val_tracks: int = 0  # full validation tracks separated for SDR; 0: all
    val_excerpts: int = 64  # fixed validation excerpts for the validation loss


@dataclass
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    stft: STFTConfig = field(default_factory=STFTConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stems: list[str] = field(default_factory=lambda: list(STEMS))
    separate: SeparateConfig = field(default_factory=SeparateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @property
    def n_bins(self) -> int:
        return self.stft.n_fft // 2 + 1


# --- loading and validation ---------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and not abs(number) < float("inf"):  # NaN or inf: they pass every range check
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        if number is not None:
            return number
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    if cls is ModelConfig:
        return _build_model(raw, where)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; valid keys are: {', '.join(names)}"
        )
    kwargs = {k: v if isinstance(v, ModelConfig) else _coerce(v, hints[k], f"{where}.{k}" if where else k)
              for k, v in raw.items()}  # a ModelConfig already built: config_from_dict(model_params=False)
    return cls(**kwargs)


def model_config_from_dict(raw: dict, where: str = "model") -> ModelConfig:
    """``{name: <architecture>, **params}`` -> ModelConfig, with the same checks as a config file
    (an ensemble builds its members' configs with this)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with a name, got {raw!r}")
    return _build_model(raw, where)


def model_config_to_dict(model: ModelConfig) -> dict:
    params = model.params if isinstance(model.params, dict) else dataclasses.asdict(model.params)
    return {"name": model.name, **params}


def _build_model(raw: dict, where: str) -> ModelConfig:
    raw = dict(raw)
    from stemsplit.models import DEFAULT_ARCHITECTURE, model_class, names

    name = raw.pop("name", DEFAULT_ARCHITECTURE)
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name: expected a model name, got {name!r}")
    if name not in names():
        raise ConfigError(f"{where}.name: unknown model {name!r}; valid models are: {', '.join(names())}")
    cls = model_class(name)
    params = _build(cls.params_class, raw, where)
    return ModelConfig(name=name, params=params)


def _check(cfg: Config) -> None:
    if not cfg.stems:
        raise ConfigError("stems: at least one stem is needed")
    if len(set(cfg.stems)) != len(cfg.stems):
        raise ConfigError(f"stems: duplicate stem names in {cfg.stems}")
    if cfg.audio.channels not in (1, 2):
        raise ConfigError("audio.channels: must be 1 or 2")
    if cfg.stft.hop_length <= 0 or cfg.stft.hop_length > cfg.stft.n_fft:
        raise ConfigError("stft.hop_length: must be in (0, n_fft]")
    if not 0.0 <= cfg.separate.overlap < 1.0:
        raise ConfigError("separate.overlap: must be in [0, 1)")
    if cfg.separate.wiener_iterations < 0:
        raise ConfigError("separate.wiener_iterations: must be >= 0")
    if cfg.separate.wiener_window_frames < 0:
        raise ConfigError("separate.wiener_window_frames: must be >= 0 (0: the whole segment)")
    if cfg.separate.wiener_scale_divisor <= 0 or cfg.separate.wiener_load <= 0:
        raise ConfigError("separate.wiener_scale_divisor and separate.wiener_load: must be > 0")
    if cfg.separate.crossfade not in CROSSFADES:
        raise ConfigError(f"separate.crossfade: {cfg.separate.crossfade!r} is not one of {', '.join(CROSSFADES)}")
    if cfg.separate.transition_power < 1 or cfg.separate.shifts < 0:
        raise ConfigError("separate.transition_power: must be >= 1; separate.shifts: must be >= 0")
    unknown = [s for s in cfg.separate.wiener_stems if s not in cfg.stems]
    if unknown:
        raise ConfigError(f"separate.wiener_stems: {unknown[0]!r} is not one of the stems {cfg.stems}")
    if not 0.0 < cfg.data.augment.warp_probability <= 1.0:
        raise ConfigError("data.augment.warp_probability: must be in (0, 1]")
    valid = {"schedule": ("cosine", "plateau", "constant"),
             "loss": ("auto", "bce", "mse", "l1", "mrstft", "affinity"),
             "amp": ("none", "bf16", "fp16")}
    for key, choices in valid.items():
        value = getattr(cfg.train, key)
        if value not in choices:
            raise ConfigError(f"train.{key}: {value!r} is not one of: {', '.join(choices)}")
    if cfg.stft.window != "hann":
        raise ConfigError(f"stft.window: only 'hann' is supported, got {cfg.stft.window!r}")
    if isinstance(cfg.model.params, dict):  # config_from_dict(model_params=False): checked when it was built
        return
    from stemsplit.models import model_class

    model_class(cfg.model.name).check_params(cfg.model.params, n_bins=cfg.n_bins, n_channels=cfg.audio.channels,
                                             n_stems=len(cfg.stems))


def config_from_dict(raw: dict, where: str = "", model_params: bool = True) -> Config:
    """``model_params=False`` keeps the model section's parameters as the plain dict it holds,
    without looking up the architecture (whose module imports torch): for the ONNX runtime,
    which runs an exported graph and never builds the model."""
    if model_params or not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        cfg = _build(Config, raw, where)
    else:
        section = dict(raw["model"])
        name = section.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where + '.' if where else ''}model.name: expected a model name, got {name!r}")
        cfg = _build(Config, {**raw, "model": ModelConfig(name=name, params=section)}, where)
    _check(cfg)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=3e-4'`` -> (['train', 'lr'], 0.0003); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, _, value = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return path, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = _deep_copy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    raw = apply_overrides(raw, overrides or [])
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict (YAML/checkpoint safe) that ``config_from_dict`` turns back into ``cfg``."""
    out = dataclasses.asdict(cfg)
    out["model"] = model_config_to_dict(cfg.model)
    return out


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML, atomically: the file is complete or absent."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
