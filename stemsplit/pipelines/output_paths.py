"""Where ``stemsplit separate`` writes: every output inside the output folder (-o), and the output
folders marked, so that a later walk of a music folder never takes stems for songs.

The ``--filename`` template is checked once, before any work: it may not leave -o on its own (an
absolute path or a ``..`` component). Its field values ({model}, {track}, {stem}, {ext}) come
from file and model names, so each becomes one safe path component (``safe_field``), and every
final path is checked again once resolved (a symbolic link inside -o may point elsewhere).

Every output folder gets a small marker file (``OUTPUT_MARKER``) on first use; the folder walk
(``pipelines/separate.py``) skips the folders that hold one, whatever -o a later run is given.
"""
from __future__ import annotations

import os
import re
import string
from pathlib import Path

from stemsplit.atomic import mkstemp_beside, write_text_atomic
from stemsplit.errors import StemsplitError

TEMPLATE_KEYS = ("model", "track", "stem", "ext")
DEFAULT_TEMPLATE = "{model}/{track}/{stem}.{ext}"
OUTPUT_MARKER = ".stemsplit-output"
_MARKER_TEXT = ("This folder holds stems written by stemsplit. `stemsplit separate` never takes the audio\n"
                "files in a folder that holds this file as songs to separate; delete it if that is wrong.\n")
_SEPARATORS = re.compile(r"[\\/]")  # both, whatever this system uses: a template may travel


class SeparateError(StemsplitError, ValueError):
    """A request that cannot run at all (bad options, unusable output folder)."""


def check_template(template: str) -> None:
    """One-line SeparateError for a --filename template with unknown fields, without {stem},
    or that would leave the output folder whatever its field values."""
    try:
        keys = {k for _, k, _, _ in string.Formatter().parse(template) if k is not None}
    except ValueError as exc:  # an unmatched brace
        raise SeparateError(f"--filename {template!r}: {exc}; write fields as {{stem}}") from None
    unknown = keys - set(TEMPLATE_KEYS)
    if unknown:
        raise SeparateError(f"--filename: unknown field {{{sorted(unknown)[0]}}}; "
                            f"valid fields: {', '.join('{' + k + '}' for k in TEMPLATE_KEYS)}")
    if "stem" not in keys:
        raise SeparateError("--filename must contain {stem}, or every stem would overwrite the last")
    try:
        sample = template.format(**{k: "x" for k in TEMPLATE_KEYS})
    except (ValueError, TypeError) as exc:  # a format spec that a name cannot take
        raise SeparateError(f"--filename {template!r}: {exc}") from None
    if Path(sample).anchor or sample.startswith(("/", "\\")) or ".." in _SEPARATORS.split(sample):
        raise SeparateError(f"--filename {template!r}: must name a path inside the output folder (-o): "
                            "no absolute path and no '..'")


def safe_field(value: str) -> str:
    """``value`` as one path component: separators become '_', and so do the dots of a value
    that is dots alone ('.', '..'), which a path would read as this folder or its parent."""
    text = _SEPARATORS.sub("_", str(value))
    if text.strip(" .") == "":
        text = text.replace(".", "_") or "_"
    return text


def track_name(path: Path) -> str:
    name = path.stem
    return name[: -len(".stem")] if name.endswith(".stem") else name


def plan_outputs(out_dir: Path, template: str, path: Path, model_name: str, fmt: str,
                 names: list[str]) -> dict[str, Path]:
    """Output name -> the file it goes to, for the input file ``path``; SeparateError for a path
    that resolves outside ``out_dir`` (through a symbolic link)."""
    fields = {"model": safe_field(model_name), "track": safe_field(track_name(path)), "ext": safe_field(fmt)}
    root = out_dir.resolve()
    targets = {}
    for name in names:
        target = out_dir / template.format(stem=safe_field(name), **fields)
        if not target.resolve().is_relative_to(root):
            raise SeparateError(f"{path}: its output {target} resolves to {target.resolve()}, outside the output "
                                f"folder {out_dir} (a symbolic link?); choose another -o or --filename")
        targets[name] = target
    return targets


def prepare_output_folder(out_dir: Path) -> None:
    """Create ``out_dir``, check that files can be written there, and mark it as stemsplit's."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = mkstemp_beside(out_dir / "write-test")  # unique: runs may share a folder
        os.close(fd)
        os.unlink(probe)
        if not (out_dir / OUTPUT_MARKER).exists():
            write_text_atomic(out_dir / OUTPUT_MARKER, _MARKER_TEXT)
    except OSError as exc:
        raise SeparateError(f"output folder {out_dir} is not writable ({exc.strerror}); "
                            "choose another with -o") from None


def is_output_folder(folder: Path, out_dir: Path | None = None) -> bool:
    """True for this run's output folder and for every folder that stemsplit marked as one."""
    if out_dir is not None and folder.resolve() == out_dir.resolve():
        return True
    return (folder / OUTPUT_MARKER).is_file()
