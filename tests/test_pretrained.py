"""The shipped-model registry: names, the default, and the no-model path."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tone_mix, write_tiny_checkpoint
from typer.testing import CliRunner

import stemsplit.pretrained as pretrained
from stemsplit.audio.io import write_audio
from stemsplit.checkpoint import CheckpointError
from stemsplit.cli import app
from stemsplit.resolver import display_name, load_torch, resolve
from stemsplit.separation.torch_runner import torch_engine


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
        load_torch(None)
    song = write_audio(tmp_path / "s.wav", tone_mix(0.5), 44100)
    res = CliRunner().invoke(app, ["separate", str(song), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--model" in res.output


def test_names_and_default_resolve(fake_registry, tmp_path):
    assert load_torch(None).stems == ["vocals", "drums", "bass", "other"]
    assert load_torch("tiny").config.model.name == "lstm"
    assert display_name(None) == "tiny"
    assert display_name(str(tmp_path / "runs" / "best.ckpt")) == "best"
    with pytest.raises(CheckpointError, match=r"not a shipped model \(tiny\)"):
        load_torch("nope")


def test_default_model_separates_without_flags(fake_registry, tmp_path):
    song = write_audio(tmp_path / "s.wav", tone_mix(0.5), 44100)
    res = CliRunner().invoke(app, ["separate", str(song), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "tiny" / "s" / "vocals.wav").exists()
    res = CliRunner().invoke(app, ["separate", "--list-models"])
    assert "tiny (default)" in res.output and "vocals 1.00" in res.output


# --- the models that ship in this build ---------------------------------------------------

SHIPPED = pretrained.list_models()
SR = 44100


def test_a_default_model_ships():
    reg = pretrained.registry()
    assert reg["default"] in reg["models"], "registry.json names no shipped default model"
    folder = Path(pretrained.__file__).parent  # everything that ships: checkpoints, ONNX files, registry
    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.suffix != ".py")
    # nine models, one of them the streaming model (6 MB); the ensemble stores its two members' weights again
    assert total < 70e6, f"stemsplit/pretrained holds {total / 1e6:.1f} MB"
    for m in SHIPPED:
        assert {"architecture", "stems", "valid_sdr", "speed_x_realtime", "training_data", "licence"} <= set(m)


def test_each_checkpoint_names_the_licence_of_every_dataset_it_saw():
    from stemsplit.checkpoint import read_checkpoint

    folder = Path(pretrained.__file__).parent
    fine_tuned_on_more = []
    for m in SHIPPED:
        meta = read_checkpoint(folder / pretrained.registry()["models"][m["name"]]["file"])["meta"]
        assert meta["licence"] == m["licence"] and "MUSDB18" in meta["licence"]
        for dataset in meta.get("datasets", []):
            assert dataset["licence"] and dataset["licence"] in meta["licence"], (m["name"], dataset)
        if len(meta.get("datasets", [])) > 1:
            fine_tuned_on_more.append(m["name"])
    # the multitracks' terms travel with the model trained on them (and the ensemble holding it)
    assert {"band_split", "band_split_wide"} <= set(fine_tuned_on_more)
    wide = pretrained.registry()["models"]["band_split_wide"]
    assert "Cambridge-MT" in wide["licence"] and "CC BY-NC-SA" in wide["licence"]
    assert "Cambridge-MT" in pretrained.registry()["models"]["ensemble"]["licence"]


@pytest.mark.parametrize("name", [m["name"] for m in SHIPPED])
def test_every_shipped_model_has_its_onnx_file_sharing_the_checkpoint_weights(name):
    from stemsplit.separation.onnx_runner import load_onnx_runner

    entry = pretrained.registry()["models"][name]
    path = resolve(name, "onnx").files["onnx"]
    assert path.name == entry["onnx"] == f"{name}.onnx" and path.parent == Path(pretrained.__file__).parent
    runner = load_onnx_runner(path, threads=1)
    shared = runner.info["shared_weights"]
    assert shared["file"] == entry["file"] and shared["entries"]
    # the graph alone: every weight is one of the checkpoint's fp16 tensors, read in place, and
    # what the graph holds inline (shape constants) is small; a band-split graph is 0.3 MB of nodes
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    # int8 LSTM weights (the registry's onnx_int8_lstm) are the only inline weights: W and R, their
    # scales and zero points, one set per LSTM, 0.6 MB for the default model
    inline_weights = [t for t in graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    int8_lstms = sum(n.op_type == "DynamicQuantizeLSTM" for n in graph.node)
    assert int8_lstms == runner.info.get("int8_lstms", 0) and (int8_lstms > 0) == bool(entry.get("onnx_int8_lstm"))
    assert len(inline_weights) == 6 * int8_lstms and all("_int8" in t.name for t in inline_weights)
    assert not any(n.op_type == "LSTM" for n in graph.node) or not int8_lstms
    inline = sum(len(a.t.raw_data) for n in graph.node if n.op_type == "Constant" for a in n.attribute)
    assert inline < 64_000 and path.stat().st_size < 1e6
    assert runner.info["weights_dtype"] == entry["weights_dtype"] == "float16"


@pytest.mark.parametrize("name", [m["name"] for m in SHIPPED])
def test_shipped_model_separates_a_10_second_mix(name):
    loaded = load_torch(name)
    assert loaded.meta["name"] == name and "MUSDB18" in loaded.meta["licence"]
    stems = torch_engine(loaded).separate(tone_mix(10.0, seed=3))
    assert stems.shape == (4, 2, 10 * SR)
    assert np.isfinite(stems).all()


def _drums_and_bass(seconds: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """A 120 bpm kick/snare/hi-hat pattern and a plucked bass line, each (2, n) float32."""
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    drums, bass = np.zeros(n), np.zeros(n)
    eighth = SR // 4
    for i, start in enumerate(range(0, n - SR // 2, eighth)):
        t = np.arange(SR // 2) / SR
        hit = 0.3 * rng.standard_normal(t.size) * np.exp(-60 * t)  # hi-hat on every eighth
        if i % 4 == 0:  # kick: a falling sine thump
            hit = hit + np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-25 * t)) / 25)) * np.exp(-15 * t)
        if i % 4 == 2:  # snare: a body tone plus a noise burst
            hit = hit + (0.4 * np.sin(2 * np.pi * 190 * t) + 0.6 * rng.standard_normal(t.size)) * np.exp(-18 * t)
        drums[start:start + t.size] += hit
    notes = [41.2, 82.4, 55.0, 110.0, 49.0, 98.0, 73.4, 55.0]  # E1 E2 A1 A2 G1 G2 D2 A1
    for i, start in enumerate(range(0, n - eighth, 2 * eighth)):
        t = np.arange(2 * eighth) / SR
        f = notes[i % len(notes)]
        tone = sum(np.sin(2 * np.pi * k * f * t) / k ** 1.3 for k in range(1, 9))
        bass[start:start + t.size] += 0.5 * tone * np.exp(-3 * t) * np.minimum(1, t * 200)
    as_stereo = lambda x: np.stack([x, x]).astype(np.float32)  # noqa: E731
    return as_stereo(drums), as_stereo(bass)


def _energy_shares(estimate: np.ndarray, drums: np.ndarray, bass: np.ndarray) -> tuple[float, float]:
    """Least-squares fit estimate ~ a*drums + b*bass; the energy of each fitted part."""
    basis = np.stack([drums.ravel(), bass.ravel()], axis=1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(basis, estimate.ravel().astype(np.float64), rcond=None)
    return float(a ** 2 * (drums.astype(np.float64) ** 2).sum()), float(b ** 2 * (bass.astype(np.float64) ** 2).sum())


def test_default_model_tells_drums_from_bass():
    drums, bass = _drums_and_bass()
    loaded = load_torch(None)
    out = torch_engine(loaded).separate(drums + bass)
    stems = loaded.stems
    drum_part, bass_part = _energy_shares(out[stems.index("drums")], drums, bass)
    assert drum_part > bass_part, f"drums stem: drum energy {drum_part:.1f}, bass energy {bass_part:.1f}"
    drum_part, bass_part = _energy_shares(out[stems.index("bass")], drums, bass)
    assert bass_part > drum_part, f"bass stem: bass energy {bass_part:.1f}, drum energy {drum_part:.1f}"


def test_installed_wheel_carries_the_models(tmp_path):
    """Build a wheel from a copy of the source, install it into an empty folder, and load the
    default model from there: the weights and registry travel as package data."""
    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "stemsplit", src / "stemsplit", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("stemsplit_audio-*.whl"))
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    probe = ("import stemsplit.pretrained as p; from stemsplit.resolver import resolve as r; "
             "m = r(None, 'torch'); "
             "assert all(r(n['name'], 'onnx').stems == m.stems for n in p.list_models()); "
             "print(p.__file__); print(p.default_model_name(), m.stems, len(p.list_models()))")
    proc = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(site)},
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]
    out = proc.stdout.splitlines()
    assert out[0].startswith(str(site))
    assert out[1].split()[0] == pretrained.default_model_name()
    assert out[1].endswith(str(len(SHIPPED)))


def test_list_models_shows_every_shipped_model_with_its_scores():
    res = CliRunner().invoke(app, ["separate", "--list-models"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].split("\t")[:4] == ["name", "architecture", "size", "stems"]
    for m in SHIPPED:
        row = next(line for line in lines if line.startswith(m["name"]))
        assert f"vocals {m['valid_sdr']['vocals']:.2f}" in row and "MUSDB18-7" in row
        assert f"{m['ood_gsdr_dbo']:.2f}" in row.split("\t")  # the held-out multitrack songs
