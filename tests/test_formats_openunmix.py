"""Open-Unmix's files in stemsplit's engine: parity with the ``openunmix`` package's own separation.

Random weights are saved as open-unmix writes a model folder (``<target>.pth``, ``<target>.json``,
``separator.json``), at a small size (8 kHz, n_fft 256, hidden 12) so the reference runs in
a fraction of a second. The reference is ``openunmix.utils.load_separator`` on that folder,
with its published settings (one EM iteration on Wiener windows, no softmask, no residual).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_proc import TIMEOUT, child_env
from conftest import tone_mix
from hostile_pickle import touch
from openunmix import utils as umx_utils
from openunmix.model import OpenUnmix as Reference

from stemsplit.errors import CheckpointError
from stemsplit.formats import ModelFiles, adapter, adapter_for_path
from stemsplit.formats import openunmix as fmt
from stemsplit.models.publishers import family_for_format
from stemsplit.separation.engine import Engine
from stemsplit.separation.onnx_runner import load_onnx_runner
from stemsplit.separation.torch_runner import TorchRunner
from stemsplit.settings import EngineSettings

STEMS = ["vocals", "drums", "bass", "other"]
RATE, N_FFT, HOP, HIDDEN, BANDWIDTH = 8000, 256, 64, 12, 3000
SECONDS = 14.0  # 1751 frames: six 300-frame Wiener windows, two published segments (12 s each)


def _nets(seed: int = 0) -> dict[str, Reference]:
    """One reference network per stem, every weight and statistic moved off its start."""
    torch.manual_seed(seed)  # the networks' own initialisation
    gen = torch.Generator().manual_seed(seed)
    max_bin = umx_utils.bandwidth_to_max_bin(RATE, N_FFT, BANDWIDTH)
    nets = {}
    for stem in STEMS:
        net = Reference(nb_bins=N_FFT // 2 + 1, nb_channels=2, hidden_size=HIDDEN, max_bin=max_bin).eval()
        with torch.no_grad():
            for key, value in net.state_dict().items():
                if key.endswith("running_var"):
                    value.copy_(0.5 + torch.rand(value.shape, generator=gen))
                elif value.is_floating_point():
                    value.add_(0.2 * torch.randn(value.shape, generator=gen))
        nets[stem] = net
    return nets


def save_folder(folder: Path, nets: dict[str, Reference], *, legacy: bool = False, names: dict | None = None,
                extra: dict | None = None) -> Path:
    """A model folder as open-unmix's train.py writes it (``legacy``: torch < 1.6 files, as umxhq's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, net in nets.items():
        state = {**net.state_dict(), **(extra or {})}
        torch.save(state, folder / f"{(names or {}).get(stem, stem)}.pth", _use_new_zipfile_serialization=not legacy)
        args = {"nfft": N_FFT, "nhop": HOP, "hidden_size": HIDDEN, "nb_channels": 2, "bandwidth": BANDWIDTH,
                "target": stem}
        (folder / f"{stem}.json").write_text(json.dumps({"args": args, "best_loss": 0.1}))
    (folder / "separator.json").write_text(json.dumps({"nfft": N_FFT, "nhop": HOP, "sample_rate": RATE,
                                                       "nb_channels": 2}))
    return folder


@pytest.fixture(scope="module")
def nets():
    return _nets()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, nets) -> Path:
    return save_folder(tmp_path_factory.mktemp("umx") / "model", nets)


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    """A stereo test signal with near-silent gaps (where the Wiener filter's eps conventions show)."""
    mix = tone_mix(SECONDS, sr=RATE, seed=3)
    t = np.arange(mix.shape[-1]) / RATE
    gate = (np.sin(2 * np.pi * 0.7 * t) > -0.3).astype(np.float32) + 1e-3
    return (mix * gate).astype(np.float32)


@pytest.fixture(scope="module")
def reference(folder, song) -> np.ndarray:
    """open-unmix's own separation of ``song``: the whole track at once, its published settings."""
    separator = umx_utils.load_separator(str(folder), targets=STEMS, niter=1, wiener_win_len=300).eval()
    with torch.no_grad():
        return separator(torch.from_numpy(song)[None])[0].numpy()


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) over the whole signal (waveforms or complex spectra)."""
    ref = ref.astype(np.complex128)
    return float(10 * np.log10((np.abs(ref) ** 2).sum() / (np.abs(ref - est) ** 2).sum()))


def _stems(runner, song: np.ndarray, **settings) -> np.ndarray:
    return Engine(runner, EngineSettings(device="cpu", **settings)).separate(song)


# --- parity -------------------------------------------------------------------------------------


def test_one_segment_over_the_whole_track_matches_openunmix_to_float_precision(folder, song, reference):
    loaded = fmt.load(fmt.files_from_path(folder))
    assert loaded.config.stems == STEMS and loaded.model.name == family_for_format("openunmix", "network")
    got = _stems(TorchRunner(loaded.model, loaded.config), song, segment_seconds=SECONDS + 1)
    scores = [sdr(reference[i], got[i]) for i in range(len(STEMS))]
    assert min(scores) > 90, scores  # measured: ~115 dB, float32 rounding


def test_published_segments_stay_on_the_wiener_windows_and_match_at_30_db(folder, song, reference):
    """Segments are five Wiener windows long and overlap by one: every segment starts on one of
    open-unmix's window boundaries, so each window's filter sees the frames it sees there."""
    loaded = fmt.load(fmt.files_from_path(folder))
    separate = loaded.config.separate
    assert (separate.wiener_iterations, separate.wiener_window_frames, separate.overlap) == (1, 300, 0.2)
    assert separate.segment_seconds == pytest.approx(1500 * HOP / RATE)
    runner = TorchRunner(loaded.model, loaded.config)
    assert Engine(runner, EngineSettings(device="cpu")).num_segments(song.shape[-1]) == 2
    scores = [sdr(reference[i], got) for i, got in enumerate(_stems(runner, song))]
    assert min(scores) >= 30, scores  # measured: 57-72 dB over four seeds


BUILD_WITHOUT_TORCH = r'''
import sys


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
from stemsplit.formats import openunmix

openunmix.build_onnx(openunmix.files_from_path(sys.argv[1]), sys.argv[2])
assert not any(m.partition(".")[0] == "torch" for m in sys.modules), "torch was imported"
print("built without torch")
'''


def test_the_onnx_graph_is_built_without_torch_and_matches_openunmix(folder, song, reference, tmp_path):
    out = tmp_path / "umx.onnx"
    proc = subprocess.run([sys.executable, "-c", BUILD_WITHOUT_TORCH, str(folder), str(out)], capture_output=True,
                          text=True, timeout=TIMEOUT, env=child_env())
    assert proc.returncode == 0 and "built without torch" in proc.stdout, proc.stderr[-2000:]
    runner = load_onnx_runner(out, threads=1)
    assert runner.config.stems == STEMS and runner.info["output_kind"] == "spectrograms"
    assert runner.meta["format"] == fmt.FORMAT
    got = _stems(runner, song, segment_seconds=SECONDS + 1)
    scores = [sdr(reference[i], got[i]) for i in range(len(STEMS))]
    assert min(scores) > 90, scores  # measured: ~110 dB (the graph folds BatchNorm into its weights)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations", [1, 2])
def test_the_wiener_filter_with_open_unmix_conventions_is_its_em(channels, iterations):
    """separate.wiener_window_frames / _scale_divisor / _load reproduce openunmix.filtering.wiener
    run window by window, as its Separator does (stems (S, C, F, T) against its (T, F, C, S))."""
    from openunmix.filtering import wiener as umx_wiener

    from stemsplit.separation.wiener import wiener

    g = np.random.default_rng(channels * 10 + iterations)
    frames, bins, window = 130, 33, 50
    mix = (g.standard_normal((channels, bins, frames)) + 1j * g.standard_normal((channels, bins, frames))) * 40
    mix[:, :, 60:75] *= 1e-4  # a quiet passage, where the loading and the scale matter
    mix = mix.astype(np.complex64)
    share = g.uniform(size=(4, channels, bins, frames)) ** 2
    mags = (share / share.sum(0, keepdims=True) * np.abs(mix)[None]).astype(np.float32)
    mix_t = torch.view_as_real(torch.from_numpy(mix)).permute(2, 1, 0, 3)             # (T, F, C, 2)
    mags_t = torch.from_numpy(mags).permute(3, 2, 1, 0)                              # (T, F, C, S)
    want = np.concatenate([torch.view_as_complex(umx_wiener(mags_t[lo:lo + window].contiguous(),
                                                            mix_t[lo:lo + window].contiguous(), iterations)
                                                 .permute(4, 2, 1, 0, 3).contiguous()).numpy()
                           for lo in range(0, frames, window)], axis=-1)             # (S, C, F, T)
    got = wiener(mix, mags, iterations, window_frames=window, scale_divisor=10.0, load=1e-5)
    assert got.shape == want.shape
    quiet = (..., slice(60, 75))
    assert min(sdr(want[s], got[s]) for s in range(4)) > 100  # measured: 133-139 dB
    assert min(sdr(want[s][quiet], got[s][quiet]) for s in range(4)) > 100  # measured: 118-135 dB
    # stemsplit's own conventions (one scale and loading, the whole spectrogram at once) differ
    ours = wiener(mix, mags, iterations)
    assert max(sdr(want[s][quiet], ours[s][quiet]) for s in range(4)) < 40  # measured: -96 to 0 dB


def test_wiener_conventions_out_of_range_are_config_errors():
    from stemsplit.config import ConfigError, load_config

    for override in ("separate.wiener_window_frames=-1", "separate.wiener_load=0", "separate.wiener_scale_divisor=0"):
        with pytest.raises(ConfigError, match="separate.wiener_"):
            load_config(None, [override])


# --- the publisher's files ----------------------------------------------------------------------


def test_legacy_files_with_hashed_names_and_their_stft_keys_give_the_same_model(folder, nets, tmp_path):
    """umxhq's files: torch < 1.6 layout, ``<target>-<sha8>.pth``, a sample_rate and STFT windows inside."""
    extra = {"sample_rate": torch.tensor(RATE), "stft.window": torch.hann_window(N_FFT),
             "transform.0.window": torch.hann_window(N_FFT)}
    old = save_folder(tmp_path / "old", nets, legacy=True, names={s: f"{s}-0123abcd" for s in STEMS}, extra=extra)
    assert fmt.looks_like(old)
    a, b = fmt.load(fmt.files_from_path(folder)), fmt.load(fmt.files_from_path(old))
    assert a.config == b.config
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    wrong = save_folder(tmp_path / "wrong", nets, extra={**extra, "sample_rate": torch.tensor(44100)})
    with pytest.raises(CheckpointError, match="sample_rate"):
        fmt.load(fmt.files_from_path(wrong))


def test_bare_catalogue_files_take_their_settings_from_the_options(folder):
    paths = {stem: folder / f"{stem}.pth" for stem in ["drums", "vocals", "bass", "other"]}
    options = {"targets": ["drums", "vocals", "bass", "other"], "sample_rate": RATE, "n_hop": HOP,
               "hidden_size": HIDDEN, "nb_channels": 2, "n_fft": N_FFT, "bandwidth_hz": BANDWIDTH, "niter": 1,
               "wiener_win_len": 300, "residual": False}
    config, meta = fmt.describe(ModelFiles(paths, options=options, meta={"licence": "MIT"}))
    from_folder, _ = fmt.describe(fmt.files_from_path(folder))
    assert config.stems == options["targets"]
    assert (config.audio, config.stft, config.separate, config.model) == \
        (from_folder.audio, from_folder.stft, from_folder.separate, from_folder.model)
    assert meta["licence"] == "MIT" and meta["format"] == "openunmix"
    for bad, match in (({"hidden_size": 64}, "hidden_size 64, but the weights have 12"),
                       ({"bandwidth_hz": 2000}, "max_bin"), ({"residual": True}, "residual"),
                       ({"targets": ["vocals", "drums"]}, "targets")):
        with pytest.raises(CheckpointError, match=match):
            fmt.describe(ModelFiles(paths, options={**options, **bad}))


def test_looks_like_knows_a_model_folder_from_other_paths(folder, nets, tmp_path):
    assert fmt.looks_like(folder) and adapter_for_path(folder) is fmt and adapter("openunmix") is fmt
    assert not fmt.looks_like(folder / "vocals.pth")  # one target's weights are not a model
    assert not fmt.looks_like(tmp_path / "missing")
    no_separator = save_folder(tmp_path / "a", nets)
    (no_separator / "separator.json").unlink()
    no_weights = save_folder(tmp_path / "b", nets)
    for path in no_weights.glob("*.pth"):
        path.unlink()
    for bad in (no_separator, no_weights):
        assert not fmt.looks_like(bad)
        with pytest.raises(CheckpointError, match="not an open-unmix model folder"):
            fmt.files_from_path(bad)
    roles = fmt.files_from_path(folder).roles
    assert roles[0] == "separator" and [r for r in roles if "." not in r and r != "separator"] == STEMS


def test_a_hostile_target_file_is_refused_on_both_paths_and_never_runs(nets, tmp_path):
    model = save_folder(tmp_path / "evil", nets)
    marker = tmp_path / "pwned"
    torch.save({**nets["vocals"].state_dict(), "hook": touch(marker)}, model / "vocals.pth")
    for action in (lambda: fmt.load(fmt.files_from_path(model)),
                   lambda: fmt.build_onnx(fmt.files_from_path(model), tmp_path / "x.onnx")):
        with pytest.raises(CheckpointError, match="refused: it asks to load posix.system"):
            action()
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


def test_targets_that_do_not_fit_together_or_the_network_are_one_line_errors(nets, tmp_path):
    mixed = save_folder(tmp_path / "mixed", nets)
    other = Reference(nb_bins=N_FFT // 2 + 1, nb_channels=2, hidden_size=16, max_bin=97)
    torch.save(other.state_dict(), mixed / "drums.pth")
    with pytest.raises(CheckpointError, match="differs from 'vocals'"):
        fmt.load(fmt.files_from_path(mixed))
    partial = save_folder(tmp_path / "partial", nets)
    state = nets["bass"].state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("fc2")}, partial / "bass.pth")
    with pytest.raises(CheckpointError, match="no 'fc2.weight' weights") as err:
        fmt.load(fmt.files_from_path(partial))
    assert "\n" not in str(err.value)
