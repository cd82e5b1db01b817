"""Outputs stay inside -o, and a folder walk never takes stemsplit's own outputs as songs.

Through the real CLI (Typer's runner) and the Python API, on a tiny random-weight checkpoint.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import tone_mix, write_tiny_checkpoint
from typer.testing import CliRunner

from stemsplit.audio.io import write_audio
from stemsplit.cli import app
from stemsplit.pipelines.output_paths import OUTPUT_MARKER, SeparateError, check_template, plan_outputs, safe_field
from stemsplit.pipelines.separate import discover
from stemsplit.pipelines.separator import Separator

runner = CliRunner()
STEMS = ("vocals", "drums", "bass", "other")


def run(*args):
    return runner.invoke(app, ["separate", *map(str, args)])


def _one_error_line(res, code: int = 2) -> str:
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == code, res.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.ckpt", "lstm")


# --- the template and the field values ---------------------------------------------------------


@pytest.mark.parametrize("template", ["../../esc/{stem}.{ext}", "../{stem}.{ext}", "{model}/../../{stem}.{ext}",
                                      "/tmp/stemsplit-escape/{stem}.{ext}", "..\\{stem}.{ext}"])
def test_a_template_that_leaves_the_output_folder_is_refused_before_any_work(tmp_path, ckpt, template):
    song = write_audio(tmp_path / "in" / "song.wav", tone_mix(1.0), 44100)
    before = _files(tmp_path)
    res = run(song, "--model", ckpt, "-o", tmp_path / "a" / "b" / "out", "--filename", template)
    line = _one_error_line(res)
    assert "--filename" in line and "inside the output folder" in line
    assert _files(tmp_path) == before  # nothing written, not even the output folder's marker
    assert not Path("/tmp/stemsplit-escape").exists()


def test_check_template_accepts_ordinary_layouts():
    for template in ("{model}/{track}/{stem}.{ext}", "{track}-{stem}.{ext}", "./{stem}.{ext}", "a..b/{stem}.{ext}"):
        check_template(template)
    with pytest.raises(SeparateError, match="inside the output folder"):
        check_template("x/../../{stem}.{ext}")


@pytest.mark.parametrize("value,safe", [("..", "__"), (".", "_"), ("...", "___"), ("a/b", "a_b"),
                                        ("a\\b", "a_b"), ("../../etc", ".._.._etc"), ("", "_"),
                                        ("song.v2", "song.v2"), ("..hidden", "..hidden")])
def test_field_values_become_one_safe_path_component(value, safe):
    assert safe_field(value) == safe


def test_plan_outputs_keeps_every_path_inside(tmp_path):
    out = tmp_path / "out"
    targets = plan_outputs(out, "{model}/{track}/{stem}.{ext}", Path("/music/...wav"), "..", "wav", ["vocals"])
    assert targets == {"vocals": out / "__" / "__" / "vocals.wav"}
    targets = plan_outputs(out, "{track}/{stem}.{ext}", Path("/music/song.wav"), "m", "wav", ["../../x"])
    assert targets == {"../../x": out / "song" / ".._.._x.wav"}
    # a literal dot beside a field value of dots makes no '..' either
    targets = plan_outputs(out, ".{track}/{stem}.{ext}", Path("/music/..wav"), "m", "wav", ["vocals"])
    assert targets == {"vocals": out / "._" / "vocals.wav"}
    # the final check is on the resolved path: a link inside the folder may point out of it
    (tmp_path / "elsewhere").mkdir()
    out.mkdir()
    (out / "m").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SeparateError, match="outside the output folder"):
        plan_outputs(out, "{model}/{stem}.{ext}", Path("/music/song.wav"), "m", "wav", ["vocals"])


def test_a_symlink_out_of_the_output_folder_is_not_followed(tmp_path, ckpt):
    song = write_audio(tmp_path / "in" / "song.wav", tone_mix(1.0), 44100)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tiny").symlink_to(outside)
    res = run(song, "--model", ckpt, "-o", tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "outside the output folder" in res.output
    assert list(outside.iterdir()) == []


def test_a_file_named_dots_keeps_its_stems_inside(tmp_path, ckpt):
    music = tmp_path / "deep" / "music"
    write_audio(music / "...wav", tone_mix(1.0), 44100)
    dotted = music / "...ckpt"  # a model file named so: {model} is '..' too
    shutil.copy(ckpt, dotted)
    out = music / "out"
    res = run(music / "...wav", "--model", dotted, "-o", out)
    assert res.exit_code == 0, res.output
    written = {p.relative_to(out) for p in _files(out)}
    assert written == {Path(OUTPUT_MARKER)} | {Path("__") / "__" / f"{s}.wav" for s in STEMS}
    assert _files(tmp_path) == _files(out) | {music / "...wav", dotted}


def test_the_api_keeps_outputs_inside_too(tmp_path, ckpt):
    song = write_audio(tmp_path / "music" / "...wav", tone_mix(1.0), 44100)
    sep = Separator(str(ckpt), runtime="torch", device="cpu")
    with pytest.raises(SeparateError, match="inside the output folder"):
        sep.separate_file(song, tmp_path / "out", filename="../{stem}.{ext}")
    assert not (tmp_path / "out").exists()
    outputs = sep.separate_file(song, tmp_path / "out")
    assert set(outputs.values()) == {tmp_path / "out" / "tiny" / "__" / f"{s}.wav" for s in STEMS}
    assert (tmp_path / "out" / OUTPUT_MARKER).is_file()


# --- the folder walk ---------------------------------------------------------------------------


def test_separating_a_music_folder_twice_takes_only_the_songs(tmp_path, ckpt, monkeypatch):
    music = tmp_path / "music"
    write_audio(music / "song.wav", tone_mix(1.0), 44100)
    monkeypatch.chdir(music)
    for _ in range(2):  # the default -o, separated/, lies inside the folder being walked
        res = run(".", "--model", ckpt)
        assert res.exit_code == 0, res.output
        assert "separated 1 file(s)" in res.output, res.output
    written = {p.relative_to(music / "separated") for p in _files(music / "separated")}
    assert written == {Path(OUTPUT_MARKER)} | {Path("tiny") / "song" / f"{s}.wav" for s in STEMS}
    # a third run with another -o skips the first run's output folder by its marker
    res = run(".", "--model", ckpt, "-o", "elsewhere")
    assert res.exit_code == 0, res.output
    assert {p.relative_to(music / "elsewhere") for p in _files(music / "elsewhere")} == \
        {Path(OUTPUT_MARKER)} | {Path("tiny") / "song" / f"{s}.wav" for s in STEMS}


def test_the_output_marker_is_written_once_and_atomically(tmp_path, ckpt):
    song = write_audio(tmp_path / "in" / "song.wav", tone_mix(1.0), 44100)
    assert run(song, "--model", ckpt, "-o", tmp_path / "out").exit_code == 0
    marker = tmp_path / "out" / OUTPUT_MARKER
    text = marker.read_text()
    assert "stemsplit" in text
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".") and p != marker]  # no temp files
    marker.write_text("kept as it is\n")
    assert run(song, "--model", ckpt, "-o", tmp_path / "out").exit_code == 0
    assert marker.read_text() == "kept as it is\n"


def test_discover_skips_output_folders_but_not_files_given_explicitly(tmp_path):
    music = tmp_path / "music"
    for rel in ("a.wav", "sub/b.wav", "out/m/a/vocals.wav", "old/m/a/drums.wav", "old/deeper/x.wav"):
        write_audio(music / rel, tone_mix(0.1), 44100)
    (music / "old" / OUTPUT_MARKER).write_text("stemsplit output\n")
    files, missing = discover([music], out_dir=music / "out")
    assert files == [music / "a.wav", music / "sub" / "b.wav"] and missing == []
    # explicit files are separated wherever they are
    files, missing = discover([music / "old" / "m" / "a" / "drums.wav"], out_dir=music / "out")
    assert files == [music / "old" / "m" / "a" / "drums.wav"] and missing == []
    # a folder given that is an output folder is refused, with the reason
    for folder in (music / "old", music / "out"):
        files, missing = discover([folder], out_dir=music / "out")
        assert files == [] and len(missing) == 1
        assert "stemsplit output folder" in missing[0][1] and "give the files themselves" in missing[0][1]


def test_the_output_folder_cannot_be_the_folder_being_separated(tmp_path, ckpt):
    music = tmp_path / "music"
    write_audio(music / "song.wav", tone_mix(1.0), 44100)
    before = _files(tmp_path)
    line = _one_error_line(run(music, "--model", ckpt, "-o", music))
    assert "-o" in line and "is the folder being separated" in line
    assert _files(tmp_path) == before
