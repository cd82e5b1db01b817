"""The shipped-model registry: names, the default, and the no-model path."""
import json

import pytest
from typer.testing import CliRunner

import stemsplit.pretrained as pretrained
from stemsplit.audio.io import write_audio
from stemsplit.checkpoint import CheckpointError
from stemsplit.cli import app
from conftest import tone_mix, write_tiny_checkpoint


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """Point the registry at a temporary folder holding one tiny model."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    write_tiny_checkpoint(folder / "tiny.ckpt", "lstm")
    reg = {"default": "tiny", "models": {"tiny": {"file": "tiny.ckpt", "architecture": "lstm",
                                                   "stems": ["vocals", "drums", "bass", "other"],
                                                   "valid_sdr": {"vocals": 1.0}}}}
    (folder / "registry.json").write_text(json.dumps(reg))
    monkeypatch.setattr(pretrained, "_HERE", folder)
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", folder / "registry.json")
    return folder


def test_no_default_model_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", tmp_path / "missing.json")
    with pytest.raises(CheckpointError, match="no trained model ships with this build yet"):
        pretrained.resolve_model(None)
    song = write_audio(tmp_path / "s.wav", tone_mix(0.5), 44100)
    res = CliRunner().invoke(app, ["separate", str(song), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--model" in res.output


def test_names_and_default_resolve(fake_registry, tmp_path):
    assert pretrained.resolve_model(None).stems == ["vocals", "drums", "bass", "other"]
    assert pretrained.resolve_model("tiny").config.model.name == "lstm"
    assert pretrained.model_display_name(None) == "tiny"
    assert pretrained.model_display_name(str(tmp_path / "runs" / "best.ckpt")) == "best"
    with pytest.raises(CheckpointError, match=r"shipped: tiny"):
        pretrained.resolve_model("nope")


def test_default_model_separates_without_flags(fake_registry, tmp_path):
    song = write_audio(tmp_path / "s.wav", tone_mix(0.5), 44100)
    res = CliRunner().invoke(app, ["separate", str(song), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "tiny" / "s" / "vocals.wav").exists()
    res = CliRunner().invoke(app, ["separate", "--list-models"])
    assert "tiny (default)" in res.output and "vocals 1.00" in res.output
