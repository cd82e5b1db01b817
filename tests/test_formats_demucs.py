"""Demucs' model files through stemsplit.formats.demucs: files written by the reference package's
own code (random weights) load from both sources (legacy .th and Hugging Face safetensors),
separate through stemsplit's engine to the reference's stems, and hostile files are refused
without anything in them running or being imported."""
from __future__ import annotations

import json
import random
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from demucs.apply import BagOfModels, apply_model
from demucs.hf import load_safetensors_model
from demucs.htdemucs import HTDemucs as Reference
from demucs.pretrained import get_model
from demucs.states import get_state, save_with_checksum
from hostile_pickle import Payload, python, touch
from safetensors.torch import save_file

from stemsplit.errors import CheckpointError
from stemsplit.formats import ModelFiles
from stemsplit.formats import demucs as adapter
from stemsplit.separation import triangle
from stemsplit.separation.engine import Engine
from stemsplit.separation.torch_runner import TorchRunner
from stemsplit.settings import EngineSettings

SOURCES = ["drums", "bass", "other", "vocals"]
TINY = {"channels": 8, "depth": 2, "nfft": 512, "t_layers": 2, "t_heads": 2, "dconv_mode": 3, "bottom_channels": 16}
SEGMENT = Fraction(1, 4)  # 11025 samples at 44.1 kHz
FLOAT_PRECISION_DB = 100  # measured here: the stems are bit-identical (no residual at all)


def _network(seed: int) -> Reference:
    torch.manual_seed(seed)
    model = Reference(sources=SOURCES, samplerate=44100, segment=SEGMENT, **TINY)
    with torch.no_grad():  # layer scales start near 0: give the residual branches a real share
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.normal_(0, 0.3)
    return model.eval()


def _package(model: Reference) -> dict:
    """What demucs.states.serialize_model and tools/export.py write; training_args is the plain
    container OmegaConf.to_container gives (omegaconf is not installed here)."""
    args, kwargs = model._init_args_kwargs
    return {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True),
            "training_args": {"dset": {"segment": 10, "sources": SOURCES}, "optim": {"lr": 3e-4}},
            "metrics": ({"loss": np.float64(0.125)}, {"nsdr": np.float32(9.0), "sdr_med": np.float64(8.5)})}


def _json_args(value):
    """The publisher's JSON encoding of constructor arguments (demucs/hf.py decodes it)."""
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {k: _json_args(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_args(v) for v in value]
    return value


def write_th(model: Reference, folder: Path, sig: str) -> Path:
    save_with_checksum(_package(model), folder / f"{sig}.th")
    return next(folder.glob(f"{sig}-*.th"))


def write_safetensors(model: Reference, folder: Path, sig: str, **metadata) -> Path:
    args, kwargs = model._init_args_kwargs
    meta = {"klass": "demucs.htdemucs.HTDemucs", "args": json.dumps(_json_args(list(args))),
            "kwargs": json.dumps(_json_args(kwargs)), **metadata}
    state = {k: v.contiguous() for k, v in get_state(model, None, half=True).items()}
    save_file(state, str(folder / f"{sig}.safetensors"), metadata=meta)
    return folder / f"{sig}.safetensors"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A folder as demucs' LocalRepo reads it: two signed .th files, their safetensors, two bags."""
    folder = tmp_path_factory.mktemp("demucs_repo")
    hf = folder / "hf"
    hf.mkdir()
    for seed, sig in ((1, "aaaa0001"), (2, "bbbb0002")):
        write_th(_network(seed), folder, sig)
        write_safetensors(_network(seed), hf, sig)
    (folder / "single.yaml").write_text(yaml.safe_dump({"models": ["aaaa0001"]}))
    bag = {"models": ["aaaa0001", "bbbb0002"], "weights": [[1.0, 0.5, 0.0, 2.0], [0.0, 0.5, 1.0, 1.0]]}
    (folder / "pair.yaml").write_text(yaml.safe_dump(bag))
    (hf / "pair.yaml").write_text(yaml.safe_dump(bag))
    return folder


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    err = float(((ref.astype(np.float64) - est) ** 2).sum())
    return float("inf") if err == 0 else 10 * np.log10(float((ref.astype(np.float64) ** 2).sum()) / err)


def _ours(path: Path, shifts: int = 0) -> tuple:
    """(LoadedModel, Engine) for the Demucs file or folder ``path``."""
    loaded = adapter.load(adapter.files_from_path(path))
    return loaded, Engine(TorchRunner(loaded.model, loaded.config, "cpu"), EngineSettings(shifts=shifts))


def _reference(model, mix: np.ndarray, shifts: int, monkeypatch) -> np.ndarray:
    """demucs.apply.apply_model, its random shift offsets replaced by the ones stemsplit draws."""
    offsets = iter([int(0.5 * 44100) - lead for lead in triangle.shift_leads(shifts, 44100)] * 4)
    monkeypatch.setattr(random, "randint", lambda a, b: next(offsets))
    with torch.no_grad():
        out = apply_model(model, torch.from_numpy(mix)[None], shifts=shifts, split=True, overlap=0.25)
    monkeypatch.undo()
    return out[0].numpy()


def _mix(length: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, length)) * 0.1).astype(np.float32)


# --- recognising and reading the files ---------------------------------------------------------------


def test_the_files_are_recognised_and_listed(repo, tmp_path):
    th = next(repo.glob("aaaa0001-*.th"))
    assert adapter.looks_like(th) and adapter.looks_like(repo / "hf" / "aaaa0001.safetensors")
    assert adapter.looks_like(repo / "hf") and adapter.looks_like(repo / "pair.yaml")
    assert adapter.files_from_path(th).paths == {"aaaa0001": th}
    files = adapter.files_from_path(repo / "hf")
    assert files.paths == {"bag": repo / "hf" / "pair.yaml", "aaaa0001": repo / "hf" / "aaaa0001.safetensors",
                           "bbbb0002": repo / "hf" / "bbbb0002.safetensors"}
    torch.save({"state_dict": {}}, tmp_path / "other.th")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"klass": "mine.Model"})
    (tmp_path / "notes.yaml").write_text("models: [cccc0003]\n")
    for path in (tmp_path / "other.th", tmp_path / "other.safetensors", tmp_path / "notes.yaml", tmp_path):
        assert not adapter.looks_like(path), path


def test_both_sources_hold_the_same_weights_and_the_published_settings(repo):
    from_th = adapter.load(adapter.files_from_path(next(repo.glob("aaaa0001-*.th"))))
    from_hf = adapter.load(adapter.files_from_path(repo / "hf" / "aaaa0001.safetensors"))
    a, b, original = from_th.model.state_dict(), from_hf.model.state_dict(), _network(1).state_dict()
    assert set(a) == set(b) == set(original)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        torch.testing.assert_close(a[key], original[key].half().float(), rtol=0, atol=0)
    cfg = from_th.config
    assert cfg.stems == SOURCES and (cfg.audio.sample_rate, cfg.audio.channels) == (44100, 2)
    sep = cfg.separate
    assert (sep.segment_seconds, sep.overlap, sep.crossfade, sep.transition_power, sep.shifts) == \
           (0.25, 0.25, "triangle", 1.0, 1)
    assert from_th.meta["licence"] == "MIT" and from_th.meta["format"] == "demucs"
    assert cfg.model.name == "htdemucs" and not from_th.model.training


# --- parity with the reference package -----------------------------------------------------------------


@pytest.mark.parametrize("length", [7000, 11025 * 3 + 1234])  # one chunk; four chunks overlapping by 25 %
def test_stems_match_the_reference_separation(repo, length, monkeypatch):
    ref = load_safetensors_model(repo / "hf" / "aaaa0001.safetensors").eval()
    mix = _mix(length)
    expected = _reference(ref, mix, 0, monkeypatch)
    _, engine = _ours(repo / "hf" / "aaaa0001.safetensors")
    got = engine.separate(mix)
    assert got.shape == expected.shape == (4, 2, length)
    for s, name in enumerate(SOURCES):
        assert _sdr(expected[s], got[s]) > FLOAT_PRECISION_DB, (name, _sdr(expected[s], got[s]))


def test_stems_match_the_reference_with_shifts(repo, monkeypatch):
    """The shift trick: stemsplit's seeded offsets handed to the reference give the same stems."""
    ref = load_safetensors_model(repo / "hf" / "aaaa0001.safetensors").eval()
    mix = _mix(20000, seed=1)
    expected = _reference(ref, mix, 2, monkeypatch)
    _, engine = _ours(repo / "hf" / "aaaa0001.safetensors", shifts=2)
    got = engine.separate(mix)
    assert min(_sdr(expected[s], got[s]) for s in range(4)) > FLOAT_PRECISION_DB
    unshifted = _ours(repo / "hf" / "aaaa0001.safetensors")[1].separate(mix)
    assert _sdr(unshifted, got) < 60  # the shifts did change the estimate


def test_a_weighted_bag_of_two_matches_the_reference_bag(repo, monkeypatch):
    reference_bag = get_model("pair", repo=repo)  # the publisher's own loader of .th bags
    assert isinstance(reference_bag, BagOfModels) and len(reference_bag.models) == 2
    mix = _mix(15000, seed=2)
    expected = _reference(reference_bag, mix, 0, monkeypatch)
    for folder in (repo, repo / "hf"):
        loaded, engine = _ours(folder / "pair.yaml")
        assert loaded.config.model.name == "htdemucs_bag"
        got = engine.separate(mix)
        for s, name in enumerate(SOURCES):
            assert _sdr(expected[s], got[s]) > FLOAT_PRECISION_DB, (folder.name, name)


def test_without_a_bag_file_the_options_give_the_bag(repo, monkeypatch):
    """The legacy source has no bag YAML online: a catalogue passes the bag's facts as options."""
    bag = yaml.safe_load((repo / "pair.yaml").read_text())
    files = ModelFiles({sig: next(repo.glob(f"{sig}-*.th")) for sig in reversed(bag["models"])}, options=bag)
    mix = _mix(9000, seed=3)
    from_options = Engine(TorchRunner((loaded := adapter.load(files)).model, loaded.config, "cpu"),
                          EngineSettings(shifts=0)).separate(mix)
    from_yaml = _ours(repo / "pair.yaml")[1].separate(mix)
    np.testing.assert_array_equal(from_options, from_yaml)


def test_a_bag_of_one_is_the_network_itself(repo):
    loaded = adapter.load(adapter.files_from_path(repo / "single.yaml"))
    assert loaded.config.model.name == "htdemucs"


# --- refusals: nothing in a file runs or is imported ------------------------------------------------------


@pytest.mark.parametrize("make", [
    touch,
    lambda marker: python(f"open({str(marker)!r}, 'w').close()"),
    lambda marker: Payload(Reference, SOURCES),  # the publisher's class, called: the stand-in never is
])
def test_a_hostile_th_is_refused_and_its_payload_never_runs(tmp_path, make):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "aaaa0001.th"
    torch.save({"klass": make(marker), "args": [], "kwargs": {"sources": SOURCES}, "state": {}}, path)
    with pytest.raises(CheckpointError, match="was refused.*nothing from it ran") as info:
        adapter.load(adapter.files_from_path(path))
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("metadata,match", [
    ({"klass": "antigravity.Fly"}, "model class 'antigravity.Fly' is not a Demucs model"),
    ({"structure": json.dumps({"_class": "antigravity.Fly"})}, "nested or quantized"),
    ({"klass": "demucs.hdemucs.HDemucs"}, "Hybrid Demucs v3 \\(hdemucs_mmi\\), which stemsplit does not run"),
])
def test_a_safetensors_naming_another_class_is_refused_and_nothing_is_imported(tmp_path, metadata, match):
    path = write_safetensors(_network(1), tmp_path, "aaaa0001", **metadata)
    before = set(sys.modules)
    with pytest.raises(CheckpointError, match=match):
        adapter.load(adapter.files_from_path(path))
    assert "antigravity" not in sys.modules and "demucs.hdemucs" not in set(sys.modules) - before


def test_damaged_or_unknown_files_are_one_line_errors(repo, tmp_path):
    th = next(repo.glob("aaaa0001-*.th"))
    renamed = tmp_path / "aaaa0001-00000000.th"
    renamed.write_bytes(th.read_bytes())
    with pytest.raises(CheckpointError, match="does not start with 00000000"):
        adapter.load(adapter.files_from_path(renamed))
    torch.save({"state_dict": {}}, tmp_path / "plain.th")
    with pytest.raises(CheckpointError, match="not a Demucs model package"):
        adapter.load(adapter.files_from_path(tmp_path / "plain.th"))
    model = _network(1)
    model._init_args_kwargs[1]["new_knob"] = 3
    with pytest.raises(CheckpointError, match="constructor argument 'new_knob' is not one stemsplit knows"):
        adapter.load(adapter.files_from_path(write_safetensors(model, tmp_path, "cccc0003")))
    (tmp_path / "bag.yaml").write_text("models: [dddd0004]\n")
    with pytest.raises(CheckpointError, match="dddd0004.safetensors or dddd0004-\\*.th is not beside it"):
        adapter.files_from_path(tmp_path / "bag.yaml")
