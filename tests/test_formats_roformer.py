"""MSST RoFormer checkpoints (a .ckpt and its YAML) through stemsplit.formats.roformer: parity with
the reference package's weights, the YAML dialect, the refusals, and finding the pair on disk."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from hostile_pickle import python, touch
from test_models_roformer import TINY, TINY_BANDS, TINY_MEL, msst_state, reference_bs, reference_mel, sdr

from stemsplit.errors import CheckpointError
from stemsplit.formats import ModelFiles, adapter_for_path
from stemsplit.formats import roformer as fmt
from stemsplit.separation.torch_runner import torch_engine
from stemsplit.settings import EngineSettings

RATE = 8000


def write_model(folder, state: dict, model: dict, *, name="model", chunk=32 * 100, num_overlap=2,
                instruments=("vocals", "other"), target=None, extra_yaml: str = ""):
    """An MSST-style pair in ``folder``: ``<name>.ckpt`` (torch.save of ``state``) and ``<name>.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / f"{name}.ckpt")
    config = {"audio": {"chunk_size": chunk, "sample_rate": RATE, "num_channels": 2, "dim_t": 801},
              "model": model,
              "training": {"instruments": list(instruments), "target_instrument": target, "lr": 1e-5},
              "inference": {"batch_size": 4, "num_overlap": num_overlap}}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False) + extra_yaml)
    return folder / f"{name}.ckpt", folder / f"{name}.yaml"


def msst_demix(forward, mix: torch.Tensor, chunk: int, num_overlap: int, batch_size: int = 1) -> torch.Tensor:
    """(C, L) -> (S, C, L) chunked as MSST's ``demix`` chunks (generic mode): the input
    reflect-padded by chunk - step at both ends, chunks every step = chunk // num_overlap (the last
    one padded to a whole chunk), each output weighted by linear fades of chunk // 10, summed and
    divided by the summed weights (0 where none). As in MSST, the window is chosen once per batch:
    no fade-in when the batch's last chunk is the first one, no fade-out for a batch that ends
    the signal (with batch_size 1: the first and the last chunk)."""
    step, fade = chunk // num_overlap, chunk // 10
    border, length = chunk - step, mix.shape[-1]
    padded = length > 2 * border and border > 0
    if padded:
        mix = F.pad(mix[None], (border, border), mode="reflect")[0]
    total = mix.shape[-1]
    result, weight = None, torch.zeros(total)
    starts = list(range(0, total, step))
    for first in range(0, len(starts), batch_size):
        batch = starts[first:first + batch_size]
        w = torch.ones(chunk)
        w[:fade], w[-fade:] = torch.linspace(0, 1, fade), torch.linspace(1, 0, fade)
        if batch[-1] == 0:
            w[:fade] = 1
        elif batch[-1] + step >= total:
            w[-fade:] = 1
        for i in batch:
            part = mix[:, i:i + chunk]
            n = part.shape[-1]
            part = F.pad(part[None], (0, chunk - n), mode="reflect" if n > chunk // 2 else "constant")[0]
            with torch.no_grad():
                out = forward(part[None])[0][..., :n] * w[:n]               # (S, C, n)
            if result is None:
                result = torch.zeros(*out.shape[:-1], total)
            result[..., i:i + n] += out
            weight[i:i + n] += w[:n]
    out = torch.nan_to_num(result / weight, nan=0.0)
    return out[..., border:-border] if padded else out


# --- parity: the reference package's weights, through the files -------------------------------


@pytest.mark.parametrize("family", ["bs_roformer", "mel_band_roformer"])
def test_published_format_gives_the_reference_stems(family, tmp_path):
    torch.manual_seed(10)
    if family == "bs_roformer":
        arch = dict(TINY, freqs_per_bands=TINY_BANDS)
        ref, hop = reference_bs(**arch), 32
    else:
        arch = dict(TINY_MEL, attn_dropout=0.0, ff_dropout=0.0)
        ref, hop = reference_mel(**arch), 64
    chunk, num_overlap = hop * 100, 2
    write_model(tmp_path, msst_state(ref.state_dict()), arch, chunk=chunk, num_overlap=num_overlap)
    loaded = fmt.load(fmt.files_from_path(tmp_path))
    assert loaded.model.name == family and loaded.stems == ["vocals", "other"]
    mix = torch.randn(2, chunk * 4 + 123) * 0.3

    # one chunk: the same network, float precision (BS 139 dB, Mel bit-identical or ~170 dB)
    with torch.no_grad():
        want, got = ref(mix[None, :, :chunk]), loaded.model(mix[None, :, :chunk])
    assert min(sdr(want[:, s], got[:, s]) for s in range(2)) > 100

    # several chunks cut and blended MSST's way: still float precision
    want = msst_demix(ref, mix, chunk, num_overlap)
    assert min(sdr(want[s], msst_demix(loaded.model, mix, chunk, num_overlap)[s]) for s in range(2)) > 100

    # stemsplit's engine with the published settings cuts and blends as MSST does: float precision
    engine = torch_engine(loaded, EngineSettings(device="cpu"))
    assert (engine.segment, engine.overlap) == (chunk, chunk - chunk // num_overlap)
    got = engine.separate(mix.numpy())
    assert min(sdr(want[s], got[s]) for s in range(2)) > 100

    # MSST with its published inference batch of 4 also drops the fade-out of every chunk of the
    # last batch, so its stems depend on its batch size; stemsplit stays well within 30 dB of it
    batched = msst_demix(ref, mix, chunk, num_overlap, batch_size=4)
    assert min(sdr(batched[s], got[s]) for s in range(2)) > 30


# --- the YAML ---------------------------------------------------------------------------------

PUBLISHED_STYLE = """\
audio:
  chunk_size: 352800
  hop_length: 441 # don't work (use in model)
  num_channels: 2
  sample_rate: 44100
model:
  dim: 32
  depth: 1
  stereo: true
  num_stems: 1
  time_transformer_depth: 1
  freq_transformer_depth: 1
  linear_transformer_depth: 0
  freqs_per_bands: !!python/tuple
  - 512
  - 513
  dim_head: 16
  heads: 2
  flash_attn: True
  dim_freqs_in: 1025
  stft_n_fft: 2048
  stft_hop_length: 441
  stft_win_length: 2048
  stft_normalized: False
  mask_estimator_depth: 2
  multi_stft_resolution_loss_weight: 1.0
  multi_stft_resolutions_window_sizes: !!python/tuple
  - 4096
  - 256
  multi_stft_hop_size: 147
training:
  instruments:
  - vocals
  - other
  target_instrument: vocals
inference:
  batch_size: 4
  num_overlap: 4
"""


def test_a_published_style_yaml_with_python_tuples(tmp_path):
    (tmp_path / "m.yaml").write_text(PUBLISHED_STYLE)
    config, ignored = fmt.config_dict(fmt.read_config(tmp_path / "m.yaml"), tmp_path / "m.yaml")
    model = config["model"]
    assert model["name"] == "bs_roformer" and model["freqs_per_bands"] == [512, 513]
    assert model["stft_hop_length"] == 441 and model["zero_dc"] is True and model["time_transformer_depth"] == 1
    assert config["stems"] == ["vocals"]  # the target instrument; the rest is the engine's residual
    assert config["audio"] == {"sample_rate": 44100, "channels": 2}
    assert config["stft"] == {"n_fft": 2048, "hop_length": 441}
    assert config["separate"]["segment_seconds"] == 8.0 and config["separate"]["overlap"] == 0.75
    assert set(ignored) == {"flash_attn", "dim_freqs_in", "multi_stft_resolution_loss_weight",
                            "multi_stft_resolutions_window_sizes", "multi_stft_hop_size", "linear_transformer_depth"}


def test_missing_model_keys_get_msst_constructor_defaults(tmp_path):
    (tmp_path / "m.yaml").write_text("model: {dim: 8, depth: 1, num_bands: 4}\n"
                                     "training: {instruments: [vocals]}\naudio: {chunk_size: 1024}\n")
    config, _ = fmt.config_dict(fmt.read_config(tmp_path / "m.yaml"), tmp_path / "m.yaml")
    model = config["model"]
    assert model["name"] == "mel_band_roformer" and model["stereo"] is False and config["audio"]["channels"] == 1
    assert model["stft_hop_length"] == 512 and model["mask_estimator_depth"] == 1
    assert config["separate"]["overlap"] == 0.5  # num_overlap 2 when the inference section is absent


@pytest.mark.parametrize(("model_yaml", "match"), [
    ("num_residual_streams: 4", "'num_residual_streams' changes the network"),
    ("linear_transformer_depth: 1", "linear_transformer_depth: 1 changes the network"),
    ("use_pope: true", "use_pope: True changes the network"),
    ("num_bands: 8", "must name either freqs_per_bands .* it names both"),
])
def test_keys_that_change_the_network_are_refused_in_one_line(tmp_path, model_yaml, match):
    text = PUBLISHED_STYLE.replace("  dim_head: 16\n", f"  dim_head: 16\n  {model_yaml}\n")
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(CheckpointError, match=match) as info:
        fmt.config_dict(fmt.read_config(tmp_path / "m.yaml"), tmp_path / "m.yaml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("training", "match"), [
    ({"instruments": ["vocals", "other"]}, r"1 stem\(s\) but the config names \['vocals', 'other'\]"),
    ({"instruments": []}, "must name the stems")])
def test_stems_must_match_the_network(tmp_path, training, match):
    raw = yaml.load(PUBLISHED_STYLE, Loader=fmt._MsstYamlLoader)  # noqa: S506
    raw["training"] = training
    with pytest.raises(CheckpointError, match=match):
        fmt.config_dict(raw, tmp_path / "m.yaml")


def test_a_yaml_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    text = PUBLISHED_STYLE + f"payload: !!python/object/apply:os.system ['touch {marker}']\n"
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(CheckpointError, match="not a RoFormer YAML config") as info:
        fmt.read_config(tmp_path / "m.yaml")
    assert "\n" not in str(info.value) and not marker.exists()
    assert not fmt.looks_like(tmp_path / "m.yaml") and not marker.exists()


# --- the weights file ------------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["system", "exec"])
def test_a_hostile_pickle_is_refused_and_its_payload_never_runs(tmp_path, payload):
    torch.manual_seed(11)
    ref = reference_bs(**dict(TINY, freqs_per_bands=TINY_BANDS))
    marker = tmp_path / "pwned"
    state = msst_state(ref.state_dict())
    evil = touch(marker) if payload == "system" else python(f"open({str(marker)!r}, 'w').close()")
    ckpt, _ = write_model(tmp_path, {"state_dict": state, "extra": evil}, dict(TINY, freqs_per_bands=TINY_BANDS))
    with pytest.raises(CheckpointError, match="refused: its pickle asks for '(posix.system|exec)'") as info:
        fmt.load(fmt.files_from_path(ckpt))
    assert "\n" not in str(info.value) and not marker.exists()
    assert info.value.exit_code == 2  # the CLI prints the line and exits 2


def test_wrapped_prefixed_half_precision_state_dicts_load(tmp_path):
    torch.manual_seed(12)
    arch = dict(TINY, freqs_per_bands=TINY_BANDS)
    ref = reference_bs(**arch)
    state = {f"module.{k}": v.half() for k, v in msst_state(ref.state_dict()).items()}
    write_model(tmp_path, {"state_dict": state, "epoch": 3}, arch)
    loaded = fmt.load(fmt.files_from_path(tmp_path))
    x = torch.randn(1, 2, 32 * 30)
    with torch.no_grad():
        assert sdr(ref(x), loaded.model(x)) > 25  # the weights rounded to float16, then widened
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.meta["format"] == "roformer" and "flash_attn" not in loaded.meta["ignored_keys"]


@pytest.mark.parametrize(("change", "match"), [
    (dict(depth=3), r"\(\d+ missing, 0 unexpected, missing e.g. 'layers.2"),
    (dict(dim=48), r"has shape \(48?, ?\d*\)|has shape"),
])
def test_weights_that_do_not_fit_the_yaml_are_refused(tmp_path, change, match):
    torch.manual_seed(13)
    arch = dict(TINY, freqs_per_bands=TINY_BANDS)
    write_model(tmp_path, msst_state(reference_bs(**arch).state_dict()), {**arch, **change})
    with pytest.raises(CheckpointError, match=match) as info:
        fmt.load(fmt.files_from_path(tmp_path))
    assert "pass this checkpoint's own YAML" in str(info.value) and "\n" not in str(info.value)


def test_catalogue_options_are_not_silently_dropped(tmp_path):
    ckpt, config = write_model(tmp_path, {}, dict(TINY, freqs_per_bands=TINY_BANDS))
    with pytest.raises(CheckpointError, match="options"):
        fmt.load(ModelFiles({"checkpoint": ckpt, "config": config}, options={"shifts": 2}))


# --- finding the pair on disk -------------------------------------------------------------------


def test_looks_like_and_files_from_path(tmp_path):
    arch = dict(TINY, freqs_per_bands=TINY_BANDS)
    same = tmp_path / "same"
    ckpt, config = write_model(same, {"w": torch.zeros(1)}, arch, name="model_bs_roformer_ep_1")
    for path in (ckpt, config, same):
        assert fmt.looks_like(path)
        assert fmt.files_from_path(path).paths == {"checkpoint": ckpt, "config": config}
    assert adapter_for_path(same) is fmt

    # KimberleyJensen's files have different names: a folder's only checkpoint and only YAML pair up
    kj = tmp_path / "kj"
    ckpt, config = write_model(kj, {"w": torch.zeros(1)}, arch, name="MelBandRoformer")
    config.rename(kj / "config_vocals_mel_band_roformer_kj.yaml")
    assert fmt.looks_like(ckpt) and fmt.looks_like(kj)
    assert fmt.files_from_path(ckpt).path("config") == kj / "config_vocals_mel_band_roformer_kj.yaml"

    lone = tmp_path / "lone"
    lone.mkdir()
    torch.save({"w": torch.zeros(1)}, lone / "x.ckpt")
    assert not fmt.looks_like(lone / "x.ckpt") and not fmt.looks_like(lone)
    with pytest.raises(CheckpointError, match="no RoFormer checkpoint with its YAML"):
        fmt.files_from_path(lone)

    other = tmp_path / "other"  # a YAML beside it that is not a RoFormer's (a Demucs bag, say)
    other.mkdir()
    torch.save({"w": torch.zeros(1)}, other / "bag.ckpt")
    (other / "bag.yaml").write_text("models: ['955717e8']\n")
    assert not fmt.looks_like(other / "bag.ckpt") and not fmt.looks_like(tmp_path / "missing.ckpt")


# --- the user's path: `--model PATH` through the resolver, the CLI, the Python API, evaluate ----


@pytest.fixture
def user_model(tmp_path):
    """A tiny vocals-only BS-RoFormer (random weights of the reference package) as a user downloads
    it from MSST: ``model.ckpt`` beside ``model.yaml``; returns (folder, reference network)."""
    torch.manual_seed(20)
    arch = dict(TINY, num_stems=1, freqs_per_bands=TINY_BANDS)
    ref = reference_bs(**arch)
    write_model(tmp_path / "vocals_model", msst_state(ref.state_dict()), arch, target="vocals")
    return tmp_path / "vocals_model", ref


def test_a_local_checkpoint_separates_through_the_cli_and_the_api(user_model, tmp_path):
    from typer.testing import CliRunner

    import stemsplit
    from stemsplit.audio.io import read_audio, write_audio
    from stemsplit.cli import app
    from stemsplit.resolver import resolve

    folder, ref = user_model
    model = resolve(str(folder / "model.ckpt"), runtime="auto")
    assert (model.origin, model.runtime, model.stems) == ("roformer", "torch", ["vocals"])
    assert set(model.files) == {"checkpoint", "config"}
    torch.manual_seed(21)
    mix = (torch.randn(2, RATE * 2) * 0.2).clamp(-1, 1)
    song = write_audio(tmp_path / "in" / "song.wav", mix.numpy(), RATE)
    mix = torch.from_numpy(read_audio(song)[0])  # as the file holds it
    want = msst_demix(ref, mix, 32 * 100, 2)  # (C, L): 1.2.4 drops the stem axis of a one-stem model

    for given, name in ((folder / "model.ckpt", "model"), (folder, "vocals_model")):
        res = CliRunner().invoke(app, ["separate", str(song), "--model", str(given), "-o", str(tmp_path / "out")])
        assert res.exit_code == 0, res.output
        vocals, rate = read_audio(tmp_path / "out" / name / "song" / "vocals.wav")
        assert rate == RATE and vocals.shape == (2, RATE * 2)
        assert sdr(want, vocals) > 30  # the written file's precision, not the model's, limits this
    sep = stemsplit.Separator(model=str(folder), device="cpu")
    assert sep.stems == ["vocals"]
    assert sdr(want, sep.separate(mix.numpy(), RATE)["vocals"]) > 100


def test_evaluate_scores_a_local_checkpoint(user_model, tmp_path):
    from stemsplit.data.cache import CacheWriter
    from stemsplit.pipelines.evaluate import EvaluateRequest, evaluate

    folder, _ = user_model
    # evaluate asks for a dataset with the model's stems: here a vocals-only one
    writer = CacheWriter(tmp_path / "data", RATE, ["vocals"], "generated", dtype="float32")
    for i in range(2):
        torch.manual_seed(30 + i)
        writer.add_track(f"song {i}", "valid", {"vocals": torch.randn(2, RATE).numpy() * 0.1})
    writer.finalize()
    report = evaluate(EvaluateRequest(data=tmp_path / "data", out=tmp_path / "eval", models=[str(folder)],
                                      split="valid", metrics="fast", workers=1))
    assert report.errors == [] and len(report.methods) == 1
    assert len(report.methods[0].info["checkpoint_sha256"]) == 64


@pytest.mark.parametrize("problem", ["hostile pickle", "unknown network key"])
def test_the_cli_refuses_a_bad_model_in_one_line_with_exit_2(user_model, tmp_path, problem):
    from typer.testing import CliRunner

    from stemsplit.audio.io import write_audio
    from stemsplit.cli import app

    folder, _ = user_model
    marker = tmp_path / "pwned"
    if problem == "hostile pickle":
        state = torch.load(folder / "model.ckpt", weights_only=True)
        torch.save({"state_dict": state, "hook": touch(marker)}, folder / "model.ckpt")
    else:
        text = (folder / "model.yaml").read_text().replace("model:\n", "model:\n  num_residual_streams: 4\n", 1)
        (folder / "model.yaml").write_text(text)
    song = write_audio(tmp_path / "song.wav", torch.zeros(2, RATE).numpy(), RATE)
    res = CliRunner().invoke(app, ["separate", str(song), "--model", str(folder / "model.ckpt"),
                                   "-o", str(tmp_path / "out")])
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert res.exit_code == 2 and len(errors) == 1, res.output
    assert ("refused" if problem == "hostile pickle" else "num_residual_streams") in errors[0]
    assert "Traceback" not in res.output and not marker.exists()
    assert not (tmp_path / "out" / "model").exists()


def test_a_catalogue_entry_downloads_from_a_hub_and_separates(user_model, tmp_path, monkeypatch):
    """The shape of the published entry (a Hugging Face checkpoint with a pinned sha256, the YAML
    from a URL with its sha256), served from 127.0.0.1."""
    import hashlib
    import json

    from hub_server import PROXY_VARS, FileServer, catalogue, entry

    from stemsplit.resolver import resolve

    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    folder, _ = user_model
    ckpt, config = (folder / "model.ckpt").read_bytes(), (folder / "model.yaml").read_bytes()
    with FileServer() as server:
        server.hf[("someone/TinyRoformer", "0123abcd", "vocals.ckpt")] = ckpt
        server.files["/configs/vocals.yaml"] = config
        files = [{"role": "checkpoint", "sources": [{"kind": "huggingface", "repo": "someone/TinyRoformer",
                                                     "revision": "0123abcd", "path": "vocals.ckpt",
                                                     "sha256": hashlib.sha256(ckpt).hexdigest(), "size": len(ckpt)}]},
                 {"role": "config", "sources": [{"kind": "url", "url": server.url("/configs/vocals.yaml"),
                                                 "sha256": hashlib.sha256(config).hexdigest()}]}]
        path = tmp_path / "catalogue.json"
        path.write_text(json.dumps(catalogue(entry("tinyroformer", files, format="roformer", stems=["vocals"],
                                                   sample_rate=RATE))))
        monkeypatch.setenv("STEMSPLIT_CATALOGUE", str(path))
        monkeypatch.setenv("STEMSPLIT_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_ENDPOINT", server.base)
        by_name = resolve("tinyroformer", device="cpu")
        local = resolve(str(folder), device="cpu")
    assert (by_name.origin, by_name.stems, by_name.architecture) == ("catalogue", ["vocals"], "bs_roformer")
    mix = torch.randn(2, RATE).numpy() * 0.1
    from stemsplit.separation.engine import Engine

    got, want = Engine(by_name.runner).separate(mix), Engine(local.runner).separate(mix)
    assert got.shape == (1, 2, RATE) and (got == want).all()
