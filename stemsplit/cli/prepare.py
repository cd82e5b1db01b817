"""`stemsplit prepare musdb|folder|synth`: flags -> pipelines.prepare; progress and the checks table.

Exit codes: 0 all tracks prepared, 1 the dataset was written but some tracks were left out
(listed in the table), 2 nothing could be prepared or the input/output is unusable.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stemsplit.cli.common import (
    SET_HELP,
    TRAIN_MODULES,
    app,
    config_or_exit,
    console,
    is_tty,
    require_extra,
    user_errors,
)
from stemsplit.cli.flags import check_choice, check_number

prepare_app = typer.Typer(help="Turn a dataset into a training-ready cache (see 'prepare COMMAND --help').",
                          no_args_is_help=True)
app.add_typer(prepare_app, name="prepare")

OUT_HELP = "Folder for the prepared dataset; train/evaluate read it with --data."
TABLE_ROWS = 40  # more tracks than this: list only those with warnings or problems (unless --verbose)
DTYPES = ("int16", "float32")  # stemsplit.data.cache_format.DTYPES, named here so no torch loads for a bad flag
RATE_RANGE = (1000, 384000)
MAX_TRACKS = 100_000
MAX_SECONDS = 3600.0


class PrepareUI:
    """A bar per stage on a terminal; plain log lines otherwise."""

    def __init__(self) -> None:
        self.tty = is_tty()
        self.progress: Progress | None = None
        self.task = None
        self.total = self.done = 0
        self.description = ""

    def __enter__(self) -> PrepareUI:
        if self.tty:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()

    def stage(self, description: str, total: int) -> None:
        self.description, self.total, self.done = description, total, 0
        if self.progress:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(description, total=max(total, 1))
        else:
            console.print(f"{description}: {total}", markup=False, highlight=False)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.progress and self.task is not None:
            self.progress.advance(self.task, n)
        elif not self.progress and self.total >= 10 and self.done % max(1, self.total // 10) == 0:
            console.print(f"{self.description}: {self.done}/{self.total}", markup=False, highlight=False)

    def message(self, text: str) -> None:
        console.print(text, soft_wrap=True, markup=False, highlight=False)


def _print_report(report, verbose: bool) -> None:
    rows = report.checks if verbose or len(report.checks) <= TABLE_ROWS else \
        [c for c in report.checks if c.problems or c.warnings]
    if rows:
        table = Table(title="track checks", title_justify="left")
        for col in ("track", "split", "status", "residual dB", "problems / warnings"):
            table.add_column(col, overflow="fold")
        for c in rows:
            residual = "" if c.residual_db is None else f"{c.residual_db:.1f}"
            table.add_row(c.name, c.split, c.status, residual, c.summary())
        console.print(table)
    counts = ", ".join(f"{split} {n}" for split, n in report.splits.items())
    console.print(f"prepared {report.out}: {counts} tracks ({report.added} new, {report.reused} unchanged, "
                  f"{len(report.failed)} left out), {report.audio_seconds / 60:.1f} min of audio "
                  f"in {report.seconds:.1f} s", markup=False, highlight=False)
    if report.failed:
        console.print(f"left out {len(report.failed)} track(s): " + ", ".join(c.name for c in report.failed),
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _check_flags(sample_rate: int | None, dtype: str, limit: int, max_residual_db: float, silence_db: float,
                 valid_fraction: float | None = None, seed: int | None = None) -> None:
    """Every numeric flag, finite and in range, before any work: one line naming the flag, exit 2."""
    with user_errors():
        check_number("--sample-rate", sample_rate, *RATE_RANGE)
        check_choice("--dtype", dtype, DTYPES)
        check_number("--limit", limit, 0, hint="0 (the default) prepares every track")
        check_number("--max-residual-db", max_residual_db, -200, 100)
        check_number("--silence-db", silence_db, -200, 0, high_open=True)
        check_number("--valid-fraction", valid_fraction, 0, 1, high_open=True)
        check_number("--seed", seed, 0, 2**32 - 1)


def _options(out: Path, config: Path | None, overrides: list[str], sample_rate: int | None,
             dtype: str, limit: int, strict: bool, max_residual_db: float, silence_db: float, licence: str = ""):
    from stemsplit.data.checks import CheckOptions
    from stemsplit.pipelines.prepare import PrepareOptions

    cfg = config_or_exit(config, overrides)
    checks = CheckOptions(silence_db=silence_db, max_residual_db=max_residual_db, strict=strict)
    options = PrepareOptions(out=out, sample_rate=sample_rate or cfg.audio.sample_rate,
                             channels=cfg.audio.channels, dtype=dtype, checks=checks, limit=limit,
                             licence=licence.strip())
    return cfg, options


# shared flags, spelled once
_OUT = typer.Option(..., "--out", "-o", help=OUT_HELP)
_CONFIG = typer.Option(None, "--config", "-c", help="Config whose audio.sample_rate, audio.channels and stems to use.")
_SET = typer.Option([], "--set", help=SET_HELP)
_RATE = typer.Option(None, "--sample-rate", help="Resample to this rate (default: the config's, 44100).")
_DTYPE = typer.Option("int16", "--dtype", help="Cache sample type: int16 with a scale per stem (half the disk, "
                      "fastest) or float32.")
_LIMIT = typer.Option(0, "--limit", help="Only the first N tracks of each split (quick trials).")
_STRICT = typer.Option(False, "--strict", help="Leave out tracks with warnings too (silent stems, clipping, a "
                       "mixture that is not the sum of its stems).")
_RESIDUAL = typer.Option(-20.0, "--max-residual-db", help="Warn about tracks whose mixture differs from the "
                         "sum of the stems by more than this (dB relative to the mixture); --strict leaves "
                         "them out.")
_SILENCE = typer.Option(-60.0, "--silence-db", help="A stem quieter than this (RMS dBFS) is reported as silent.")
_LICENCE = typer.Option("", "--licence", help="The data's terms of use, recorded in dataset.json and in the "
                        "metadata of every model trained on it (musdb and synth have their own by default).")
_VERBOSE = typer.Option(False, "--verbose", "-v", help="List every track in the checks table.")


@prepare_app.command("musdb")
def prepare_musdb(
    root: Path = typer.Option(..., "--root", help="MUSDB18 root holding train/ and/or test/."),
    out: Path = _OUT,
    wav: bool = typer.Option(False, "--wav", help="MUSDB18-HQ: wav folders instead of .stem.mp4 files."),
    subsets: str = typer.Option("train,test", "--subsets", help="Comma-separated: train (gives train and "
                                "valid), test."),
    config: Path | None = _CONFIG, overrides: list[str] = _SET, sample_rate: int | None = _RATE,
    dtype: str = _DTYPE, limit: int = _LIMIT, strict: bool = _STRICT, max_residual_db: float = _RESIDUAL,
    silence_db: float = _SILENCE, licence: str = _LICENCE, verbose: bool = _VERBOSE,
) -> None:
    """MUSDB18 (.stem.mp4) or MUSDB18-HQ (--wav) with the official train/valid/test splits."""
    require_extra("prepare musdb", *TRAIN_MODULES, "musdb")
    _check_flags(sample_rate, dtype, limit, max_residual_db, silence_db)
    from stemsplit.pipelines import prepare as pipeline

    _, options = _options(out, config, overrides, sample_rate, dtype, limit, strict, max_residual_db, silence_db,
                          licence)
    names = tuple(s.strip() for s in subsets.split(",") if s.strip())
    with user_errors(), PrepareUI() as ui:
        bad = [s for s in names if s not in ("train", "test")]
        if bad or not names:
            from stemsplit.cli.common import UserError
            raise UserError(f"--subsets {subsets!r}: choose from train, test")
        report = pipeline.prepare_musdb(root, options, is_wav=wav, subsets=names, reporter=ui)
    _print_report(report, verbose)


@prepare_app.command("folder")
def prepare_folder(
    root: Path = typer.Option(..., "--root", help="Folder of track folders (optionally inside train/ valid/ test/)."),
    out: Path = _OUT,
    stems: str | None = typer.Option(None, "--stems", help="Comma-separated stem names, e.g. "
                                        "vocals,drums,bass,other,piano (default: the config's stems)."),
    valid_fraction: float = typer.Option(0.1, "--valid-fraction", help="Share of tracks drawn for the valid "
                                         "split when there is no valid/ folder."),
    seed: int = typer.Option(0, "--seed", help="Seed of the valid-split draw."),
    valid_tracks: str = typer.Option("", "--valid-tracks", help="Comma-separated track folder names that form "
                                     "the valid split (held out of training), instead of a random draw."),
    config: Path | None = _CONFIG, overrides: list[str] = _SET, sample_rate: int | None = _RATE,
    dtype: str = _DTYPE, limit: int = _LIMIT, strict: bool = _STRICT, max_residual_db: float = _RESIDUAL,
    silence_db: float = _SILENCE, licence: str = _LICENCE, verbose: bool = _VERBOSE,
) -> None:
    """Any folder of <track>/{vocals,drums,bass,other}.wav (+ mixture.wav), with per-track checks."""
    require_extra("prepare folder", *TRAIN_MODULES)
    _check_flags(sample_rate, dtype, limit, max_residual_db, silence_db, valid_fraction, seed)
    from stemsplit.pipelines import prepare as pipeline

    cfg, options = _options(out, config, overrides, sample_rate, dtype, limit, strict, max_residual_db, silence_db,
                            licence)
    stem_list = [s.strip().lower() for s in stems.split(",") if s.strip()] if stems else list(cfg.stems)
    held_out = tuple(n.strip() for n in valid_tracks.split(",") if n.strip())
    with user_errors(), PrepareUI() as ui:
        report = pipeline.prepare_folder(root, stem_list, options, valid_fraction=valid_fraction, seed=seed,
                                         reporter=ui, valid_tracks=held_out)
    _print_report(report, verbose)


@prepare_app.command("synth")
def prepare_synth(
    out: Path = _OUT,
    tracks: int = typer.Option(100, "--tracks", help="Number of songs."),
    seconds: float = typer.Option(30.0, "--seconds", help="Length of each song."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same songs."),
    valid_fraction: float = typer.Option(0.1, "--valid-fraction", help="Share of songs in the valid split."),
    config: Path | None = _CONFIG, overrides: list[str] = _SET, sample_rate: int | None = _RATE,
    dtype: str = _DTYPE, verbose: bool = _VERBOSE,
) -> None:
    """Generate songs (MUSDB18-HQ wav layout in OUT/audio) and prepare them into OUT."""
    require_extra("prepare synth", *TRAIN_MODULES)
    _check_flags(sample_rate, dtype, 0, -20.0, -60.0, valid_fraction, seed)
    with user_errors():
        check_number("--tracks", tracks, 1, MAX_TRACKS)
        check_number("--seconds", seconds, 0, MAX_SECONDS, low_open=True)
    from stemsplit.pipelines import prepare as pipeline

    _, options = _options(out, config, overrides, sample_rate, dtype, 0, False, -20.0, -60.0)
    with user_errors(), PrepareUI() as ui:
        report = pipeline.prepare_synth(out, tracks, seconds, options, seed=seed, valid_fraction=valid_fraction,
                                        reporter=ui)
    extra = report.extra
    console.print(f"generated {extra['generated']} song(s) in {extra['generate_seconds']:.1f} s "
                  f"({tracks - extra['generated']} reused) into {out / 'audio'}", markup=False, highlight=False)
    _print_report(report, verbose)
