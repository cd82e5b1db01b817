"""The lean install (issue 16): separation never imports the train extra, and the train commands
say how to get it.

Each case runs the real CLI entry point (``stemsplit.cli.main``) in a child process and reads
``sys.modules`` there at exit, so nothing this test process imported can hide an import. "Not
installed" is played by a finder at the front of ``sys.meta_path`` that refuses the train
extra's modules, exactly as ``import torch`` fails in a venv made by ``pip install stemsplit``.
(scripts/check_lean_install.sh checks a real such venv; it runs in ``make test``.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_proc import TIMEOUT, child_env
from conftest import tone_mix

from stemsplit.audio.io import write_audio

# the import names of everything in pyproject's [train] extra: none of it is in the base install
TRAIN_EXTRA = ("torch", "torchaudio", "musdb", "museval", "onnx", "matplotlib", "PIL")
STEMS = ("vocals", "drums", "bass", "other")

CHILD = r'''
import json, sys

report, blocked, args = sys.argv[1], set(filter(None, sys.argv[2].split(","))), sys.argv[3:]


class _NotInstalled:
    """Refuses the blocked top-level packages as an interpreter without them would."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
sys.argv = ["stemsplit", *args]
code = 0
try:
    from stemsplit.cli import main
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
loaded = sorted({m.partition(".")[0] for m in sys.modules} & set(TRAIN_EXTRA))
with open(report, "w") as f:
    json.dump({"code": code, "loaded": loaded}, f)
'''.replace("TRAIN_EXTRA", repr(TRAIN_EXTRA))


def stemsplit(tmp_path: Path, *args, block: tuple[str, ...] = ()) -> tuple[int, list[str], str]:
    """(exit code, train-extra packages in sys.modules at exit, stdout+stderr) of one CLI run."""
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(report), ",".join(block), *map(str, args)],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert report.is_file(), f"the child died before reporting (exit {proc.returncode}):\n{out[-2000:]}"
    result = json.loads(report.read_text())
    return result["code"], result["loaded"], out


@pytest.mark.parametrize("args", [["--help"], ["separate", "--help"], ["separate", "--list-models"]],
                         ids=["help", "separate-help", "list-models"])
def test_help_and_model_list_import_nothing_of_the_train_extra(tmp_path, args):
    code, loaded, out = stemsplit(tmp_path, *args)
    assert code == 0, out[-2000:]
    assert loaded == [], f"`stemsplit {' '.join(args)}` imported {loaded}"


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    return write_audio(tmp_path_factory.mktemp("in") / "song.wav", tone_mix(3.0), 44100)


def _stems(out: Path) -> dict[str, Path]:
    return {p.stem: p for p in out.glob("*/song/*.wav")}


def test_separate_on_onnx_runtime_imports_no_torch(tmp_path, song):
    """torch is installed here, so only the import rules keep it out of sys.modules."""
    code, loaded, out = stemsplit(tmp_path, "separate", song, "-o", tmp_path / "out", "--runtime", "onnx")
    assert code == 0, out[-2000:]
    assert sorted(_stems(tmp_path / "out")) == sorted(STEMS), out[-2000:]
    assert loaded == [], f"separate --runtime onnx imported {loaded}"


def test_separate_without_the_train_extra_uses_onnx_by_default(tmp_path, song):
    """As after `pip install stemsplit`: no --runtime flag, and every train-extra package absent."""
    code, loaded, out = stemsplit(tmp_path, "separate", song, "-o", tmp_path / "out", block=TRAIN_EXTRA)
    assert code == 0, out[-2000:]
    stems = _stems(tmp_path / "out")
    assert sorted(stems) == sorted(STEMS), out[-2000:]
    assert all(p.stat().st_size > 44100 for p in stems.values())  # 3 s of 16-bit stereo, not empty files


# Each command of the train extra, with the arguments it requires, so the run gets past flag parsing.
TRAIN_COMMANDS = {
    "prepare-synth": ["prepare", "synth", "-o", "data"],
    "prepare-folder": ["prepare", "folder", "--root", ".", "-o", "data"],
    "prepare-musdb": ["prepare", "musdb", "--root", ".", "-o", "data"],
    "train": ["train", "--config", "cfg.yaml", "-o", "run"],
    "evaluate": ["evaluate", "--data", "data", "--metrics", "fast"],
    "export": ["export", "--model", "lstm", "-o", "lstm.onnx"],
    "ensemble": ["ensemble", "lstm", "unet", "--data", "data", "-o", "ensemble.ckpt"],
}


@pytest.mark.parametrize("name", list(TRAIN_COMMANDS))
def test_train_commands_without_torch_say_how_to_install_it(tmp_path, name):
    code, loaded, out = stemsplit(tmp_path, *TRAIN_COMMANDS[name], block=("torch", "torchaudio"))
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2, out[-2000:]
    assert len(lines) == 1, f"expected one line, got:\n{out}"
    assert lines[0].startswith("error: ") and 'pip install ".[train]"' in lines[0], lines[0]
    assert "torch" in lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"], "the command wrote something"


def test_train_commands_still_show_help_without_torch(tmp_path):
    for args in (["train", "--help"], ["prepare", "synth", "--help"], ["evaluate", "--help"]):
        code, _, out = stemsplit(tmp_path, *args, block=("torch", "torchaudio"))
        assert code == 0 and "Usage" in out, out[-2000:]
