"""``stemsplit train``: a new run from a config and a prepared dataset, or ``--resume RUN``.

The run folder::

    RUN/config.yaml          the resolved config (after --set)
    RUN/run.json             data folders, recipe, git commit, command, start time
    RUN/last.ckpt            newest state (model + train_state); last.prev.ckpt the one before
    RUN/best.ckpt            best mean validation SDR; ``stemsplit separate --model RUN/best.ckpt``
    RUN/metrics.csv          train and validation rows
    RUN/loss.png, RUN/val_sdr.png (+ mask_accuracy.png for binary-mask models)

Under torchrun every rank runs this; only rank 0 writes into the run folder.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

import stemsplit
from stemsplit.atomic import write_json_atomic
from stemsplit.checkpoint import read_checkpoint
from stemsplit.config import Config, ConfigError, apply_overrides, config_from_dict, load_config, save_config
from stemsplit.data.cache import DataError, PreparedDataset
from stemsplit.models import model_class
from stemsplit.training.distributed import DistContext, barrier, broadcast_object, cleanup, init_distributed
from stemsplit.training.fit import Fitter
from stemsplit.training.loop import Trainer, TrainResult
from stemsplit.training.state import LAST, load_resume_checkpoint


@dataclass
class TrainOptions:
    config: Path | None = None
    data: Path | None = None
    out: Path | None = None
    resume: Path | None = None
    overrides: list[str] = field(default_factory=list)
    device: str | None = None  # None/"auto": CUDA, then MPS, then CPU
    tty: bool = False
    console: Console | None = None


def git_commit() -> str | None:
    """The stemsplit source tree's commit, with ' (dirty)' for uncommitted changes; None outside git."""
    src = Path(stemsplit.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + (" (dirty)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def open_datasets(primary: Path, cfg: Config) -> list[PreparedDataset]:
    """The training datasets: ``--data`` (also the validation set) and then ``data.extra``."""
    datasets = [PreparedDataset(Path(primary))] + [PreparedDataset(Path(p)) for p in cfg.data.extra]
    if not datasets[0].splits.get("valid"):
        raise DataError(f"{datasets[0].root}: has no 'valid' split, which training validates on; prepare it again "
                        "from at least 2 tracks (one is drawn for valid, see --valid-fraction) or with a valid/ "
                        "folder of tracks")
    for ds in datasets:
        missing = [s for s in cfg.stems if s not in ds.stems]
        if missing:
            raise DataError(f"{ds.root}: has no stem {missing[0]!r} that the config's stems need; "
                            f"its stems are: {', '.join(ds.stems)}")
    return datasets


def initial_weights(cfg: Config) -> tuple[dict | None, dict]:
    """``train.init_from``'s weights (fine-tuning a pretrained run), checked against the config,
    and its metadata (``{}`` without one)."""
    if not cfg.train.init_from:
        return None, {}
    path = Path(cfg.train.init_from).expanduser()
    ckpt = read_checkpoint(path)
    theirs = ckpt.get("model", {}).get("name")
    if theirs != cfg.model.name:
        raise ConfigError(f"train.init_from: {path} holds a {theirs!r} model, the config builds {cfg.model.name!r}; "
                          "fine-tune from a checkpoint of the same architecture")
    return ckpt["state_dict"], dict(ckpt.get("meta", {}))


def describe_datasets(datasets: list[PreparedDataset], init_meta: dict, train_on_valid: bool = False) -> list[dict]:
    """What the weights saw: each dataset's source, licence and train tracks, those of the run
    they were fine-tuned from first (a source listed once). A final fit (``data.train_on_valid``)
    marks the first dataset ``valid_trained_on``, also when only the stage it grew from was one."""
    seen: list[dict] = [dict(d) for d in init_meta.get("datasets", [])]
    for i, ds in enumerate(datasets):
        on_valid = train_on_valid and i == 0
        entry = {"source": ds.meta.get("source", str(ds.root)), "licence": ds.meta.get("licence", ""),
                 "train_tracks": len(ds.tracks("train")) + (len(ds.tracks("valid")) if on_valid else 0)}
        if on_valid:
            entry["valid_trained_on"] = True
        same = [d for d in seen if d.get("source") == entry["source"]]
        if not same:
            seen.append(entry)
        elif on_valid:
            same[0].update(train_tracks=max(same[0].get("train_tracks", 0), entry["train_tracks"]),
                           valid_trained_on=True)
    return seen


def _new_run(opts: TrainOptions, ctx: DistContext) -> tuple[Config, Path, Path, dict]:
    if opts.config is None or opts.data is None or opts.out is None:
        raise ConfigError("a new run needs --config, --data and --out (or --resume RUN to continue one)")
    cfg = load_config(opts.config, opts.overrides)
    out = Path(opts.out)
    if (out / LAST).exists() or (out / "last.prev.ckpt").exists():
        raise ConfigError(f"--out {out}: already holds a training run; continue it with "
                          f"'stemsplit train --resume {out}' or choose another --out")
    meta = {"trained_on": [str(opts.data), *cfg.data.extra], "data_root": str(Path(opts.data).resolve()),
            "recipe": str(opts.config), "git": git_commit(), "stemsplit_version": stemsplit.__version__}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        run_info = {**meta, "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "world_size": ctx.world_size, "device": str(ctx.device)}
        write_json_atomic(out / "run.json", run_info)
    return cfg, Path(opts.data), out, meta


def _resumed_run(opts: TrainOptions, ctx: DistContext) -> tuple[Config, Path, Path, dict, dict]:
    if opts.config is not None:
        raise ConfigError("--resume takes the config from the run; change values with --set instead of --config")
    run_dir = Path(opts.resume)
    path = None
    if ctx.is_main:
        say = (opts.console.print if opts.console else print)
        ckpt, path = load_resume_checkpoint(run_dir, warn=lambda m: say(f"warning: {m}"))
    path = broadcast_object(str(path) if path else None, ctx)
    if not ctx.is_main:
        ckpt = read_checkpoint(path)
    try:
        cfg = config_from_dict(apply_overrides(ckpt["config"], opts.overrides))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    meta = dict(ckpt.get("meta", {}))
    for volatile in ("steps", "epochs", "scores", "best_step", "effective_batch_size", "world_size"):
        meta.pop(volatile, None)
    data = Path(opts.data) if opts.data else Path(meta.get("data_root", ""))
    if not opts.data and not meta.get("data_root"):
        raise ConfigError(f"{path}: does not say which dataset it was trained on; pass --data")
    meta["data_root"] = str(data.resolve())
    meta["git"] = git_commit()
    if ctx.is_main and opts.overrides:
        save_config(cfg, run_dir / "config.yaml")
    return cfg, data, run_dir, meta, ckpt


def run_train(opts: TrainOptions, on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train (or continue) one run; returns how it ended. Joins the process group under torchrun."""
    ctx = init_distributed(opts.device)
    try:
        resume = None
        if opts.resume is not None:
            cfg, data, run_dir, meta, resume = _resumed_run(opts, ctx)
        else:
            cfg, data, run_dir, meta = _new_run(opts, ctx)
        datasets = open_datasets(data, cfg)
        init, init_meta = initial_weights(cfg) if resume is None else (None, {})
        if resume is None:
            meta["datasets"] = describe_datasets(datasets, init_meta, cfg.data.train_on_valid)
        if init is not None:  # the stage it grew from, for the steps and minutes it really took
            meta["init_from"] = {"checkpoint": cfg.train.init_from, "best_step": init_meta.get("best_step"),
                                 "train_minutes": init_meta.get("train_minutes")}
        barrier(ctx)
        # models fitted without gradients (the contract's trained_by) take the fitting loop
        runner = Fitter if model_class(cfg.model.name).trained_by == "fit" else Trainer
        trainer = runner(cfg, run_dir, datasets, ctx, meta=meta, resume=resume, init_state=init, tty=opts.tty,
                          console=opts.console, on_step=on_step)
        result = trainer.run()
        # every rank leaves together: a rank that tore down its process group while rank 0 was
        # still writing the last checkpoint aborted at exit now and then ("terminate called")
        barrier(ctx)
        return result
    finally:
        cleanup()
