"""Public models by name, end to end: a catalogue entry -> download and verify -> the format's
adapter -> the engine, through `stemsplit separate --model NAME` and `stemsplit.Separator`.

The files are random weights saved by the reference packages themselves and served from
127.0.0.1 (an Open-Unmix model as plain URLs with torch.hub-style hash prefixes, a Demucs bag
from a fake Hugging Face endpoint); the catalogue comes from STEMSPLIT_CATALOGUE.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone_mix
from hub_server import PROXY_VARS, FileServer, catalogue, entry
from typer.testing import CliRunner

import stemsplit
from stemsplit.audio.io import read_audio, write_audio
from stemsplit.cli import app
from stemsplit.resolver import resolve

RATE = 44100


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STEMSPLIT_CACHE", str(tmp_path / "cache"))


def _umx_files() -> dict[str, bytes]:
    """Two Open-Unmix targets (random, tiny), as torch.hub names them: <target>-<sha256[:8]>.pth."""
    from openunmix.model import OpenUnmix

    files = {}
    for i, target in enumerate(("vocals", "other")):
        torch.manual_seed(i)
        net = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=8, max_bin=64).eval()
        path = Path(f"/tmp/never-{target}.pth")
        buffer = __import__("io").BytesIO()
        torch.save(net.state_dict(), buffer)
        data = buffer.getvalue()
        files[f"{target}-{hashlib.sha256(data).hexdigest()[:8]}.pth"] = data
        del path
    return files


def _demucs_safetensors() -> bytes:
    """One tiny HTDemucs network as the publisher's Hugging Face export writes it."""
    from fractions import Fraction

    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state
    from safetensors.torch import save

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=RATE, segment=Fraction(1, 4),
                     channels=8, depth=2, nfft=512, t_layers=1, t_heads=2, dconv_mode=3, bottom_channels=16).eval()
    args, kwargs = model._init_args_kwargs
    kwargs = {k: ({"_type": "fraction", "numerator": v.numerator, "denominator": v.denominator}
                  if isinstance(v, Fraction) else v) for k, v in kwargs.items()}
    meta = {"klass": "demucs.htdemucs.HTDemucs", "args": json.dumps(list(args)), "kwargs": json.dumps(kwargs)}
    state = {k: v.contiguous() for k, v in get_state(model, None, half=True).items()}
    return save(state, metadata=meta)


@pytest.fixture(scope="module")
def served():
    umx = _umx_files()
    with FileServer() as server:
        for name, data in umx.items():
            server.files[f"/zenodo/{name}"] = data
        server.hf[("someone/TinyDemucs", "main", "a1b2c3d4.safetensors")] = _demucs_safetensors()
        yield server, umx


@pytest.fixture
def catalogue_file(served, tmp_path, monkeypatch) -> Path:
    server, umx = served
    umx_files = [{"role": name.split("-")[0], "sources": [
        {"kind": "url", "url": server.url(f"/zenodo/{name}"), "sha256_prefix": name.split("-")[1][:8]}]}
        for name in umx]
    umx_entry = entry("tinyumx", umx_files, options={
        "targets": ["vocals", "other"], "sample_rate": RATE, "n_fft": 4096, "n_hop": 1024, "nb_channels": 2,
        "hidden_size": 8, "max_bin": 64, "niter": 1, "wiener_win_len": 300, "residual": False})
    demucs_entry = entry("tinydemucs", [
        {"role": "bag", "inline": {"name": "tinydemucs.yaml", "text": "models: ['a1b2c3d4']\n"}},
        {"role": "a1b2c3d4", "sources": [{"kind": "huggingface", "repo": "someone/TinyDemucs",
                                          "path": "a1b2c3d4.safetensors"}]}],
        format="demucs", stems=["drums", "bass", "other", "vocals"])
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue(umx_entry, demucs_entry)))
    monkeypatch.setenv("STEMSPLIT_CATALOGUE", str(path))
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    return path


def test_an_open_unmix_name_downloads_converts_and_separates_without_torch_on_onnx(served, catalogue_file, tmp_path):
    server, _ = served
    song = write_audio(tmp_path / "in" / "song.wav", tone_mix(3.0), RATE)
    res = CliRunner().invoke(app, ["separate", str(song), "--model", "tinyumx", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    for stem in ("vocals", "other"):
        audio, rate = read_audio(tmp_path / "out" / "tinyumx" / "song" / f"{stem}.wav")
        assert rate == RATE and audio.shape == (2, 3 * RATE)
    model = resolve("tinyumx")
    assert (model.origin, model.runtime, model.stems) == ("catalogue", "onnx", ["vocals", "other"])
    assert model.files["onnx"].is_file()  # the cached conversion beside the downloaded weights
    gets = len(server.log)
    assert stemsplit.Separator("tinyumx", runtime="torch").stems == ["vocals", "other"]
    assert len(server.log) == gets  # cached: the second use downloads nothing


def test_a_demucs_name_downloads_from_the_hub_and_matches_its_local_files(served, catalogue_file, tmp_path):
    sep = stemsplit.Separator("tinydemucs", device="cpu")
    assert sep.runtime == "torch" and sep.stems == ["drums", "bass", "other", "vocals"]
    mix = tone_mix(1.0)
    by_name = sep.separate(mix, RATE)
    local = stemsplit.Separator(str(sep.model.files["a1b2c3d4"]), device="cpu").separate(mix, RATE)
    for stem in by_name:
        np.testing.assert_array_equal(by_name[stem], local[stem])
    res = CliRunner().invoke(app, ["separate", "--list-models"])
    row = next(line.split("\t") for line in res.output.splitlines() if line.startswith("tinydemucs\t"))
    assert row[4] == "yes"  # cached


def test_a_corrupted_download_is_one_line_exit_2_and_leaves_no_file(served, catalogue_file, tmp_path):
    server, umx = served
    name = next(iter(umx))
    server.files[f"/zenodo/{name}"] = umx[name][:-1] + b"!"  # one byte changed on the way
    try:
        song = write_audio(tmp_path / "song.wav", tone_mix(1.0), RATE)
        res = CliRunner().invoke(app, ["separate", str(song), "--model", "tinyumx", "-o", str(tmp_path / "out")])
    finally:
        server.files[f"/zenodo/{name}"] = umx[name]
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert res.exit_code == 2 and len(errors) == 1 and res.output.strip().endswith(errors[0])  # after the progress
    assert server.url(f"/zenodo/{name}") in errors[0] and "checksum" in errors[0]
    cache = tmp_path / "cache" / "tinyumx"
    assert not cache.exists() or not [p for p in cache.iterdir() if p.suffix == ".pth"]
    assert not (tmp_path / "out" / "tinyumx").exists()


def test_evaluate_scores_a_public_model_by_name(served, catalogue_file, tmp_path):
    from stemsplit.data.cache import CacheWriter
    from stemsplit.pipelines.evaluate import EvaluateRequest, evaluate

    writer = CacheWriter(tmp_path / "data", RATE, ["vocals", "other"], "generated", dtype="float32")
    for i in range(2):
        mix = tone_mix(1.0, seed=i)
        writer.add_track(f"song {i}", "valid", {"vocals": 0.6 * mix, "other": 0.4 * mix})
    writer.finalize()
    report = evaluate(EvaluateRequest(data=tmp_path / "data", out=tmp_path / "eval", models=["tinyumx"],
                                      split="valid", metrics="fast", workers=1))
    assert report.errors == [] and [m.name for m in report.methods] == ["tinyumx"]
    assert len(report.methods[0].info["checkpoint_sha256"]) == 64  # the files' fingerprint keys the cache
