"""BS-RoFormer and Mel-Band RoFormer (stemsplit/models/roformer.py) against the reference package.

The reference is ``bs_roformer`` 1.2.4 from the index. It cannot be configured exactly as the
published (MSST) networks, in two ways, and each is neutralised here so that the arithmetic is
the published one:

- it wraps every attention and feed-forward branch in a hyper-connection module; with
  ``num_residual_streams=1`` that module is a plain residual (x + branch(x)) whose weights sit
  under ``.branch.`` in the state dict;
- its BSRoformer always adds a learned value-residual mix to the attention of every block after
  the first (``add_value_residual = not is_first``, no switch): v.lerp(first_v, sigmoid(W x + b)).
  With W = 0 and b = -1e4 the sigmoid is exactly 0 in float32, so v is unchanged. Its
  MelBandRoformer has the switch (``add_value_residual=False``).

``msst_state`` renames the reference's state dict to the published checkpoints' names.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from stemsplit.errors import ConfigError
from stemsplit.models import model_class
from stemsplit.models.roformer import (
    BSRoformer,
    BSRoformerParams,
    MelBandRoformer,
    MelBandRoformerParams,
    mel_band_layout,
)

TINY = dict(dim=32, depth=2, stereo=True, num_stems=2, time_transformer_depth=1, freq_transformer_depth=1,
            dim_head=16, heads=2, stft_n_fft=128, stft_hop_length=32, stft_win_length=128, mask_estimator_depth=2)
TINY_BANDS = [4, 4, 8, 16, 33]
TINY_MEL = dict(TINY, stft_n_fft=256, stft_hop_length=64, stft_win_length=256, num_bands=12, sample_rate=16000)


def sdr(ref, est) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) over the whole signal, in dB (inf when equal)."""
    ref, est = np.asarray(ref, np.float64), np.asarray(est, np.float64)
    err = ((ref - est) ** 2).sum()
    return float("inf") if err == 0 else float(10 * np.log10((ref ** 2).sum() / err))


def reference_bs(**arch) -> torch.nn.Module:
    """bs_roformer 1.2.4's BSRoformer with the published arithmetic (see the module doc), eval mode."""
    from bs_roformer import BSRoformer as Reference

    arch = {"zero_dc": True, **arch, "freqs_per_bands": tuple(arch["freqs_per_bands"])}
    ref = Reference(**arch, num_residual_streams=1).eval()
    with torch.no_grad():
        for name, module in ref.named_modules():
            if name.endswith("to_value_residual_mix"):
                module.weight.zero_()
                module.bias.fill_(-1e4)
    return ref


def reference_mel(**arch) -> torch.nn.Module:
    from bs_roformer.mel_band_roformer import MelBandRoformer as Reference

    return Reference(**arch, num_residual_streams=1, add_value_residual=False, linear_transformer_depth=0,
                     zero_dc=True, match_input_audio_length=True).eval()


def msst_state(state: dict) -> dict:
    """bs_roformer 1.2.4 names -> the published (MSST) names: no hyper-connection ``.branch.``,
    no (neutralised) value-residual mix, and Mel-Band blocks indexed 0, 1 instead of 1, 2 (1.2.4
    keeps an empty slot 0 for its linear transformer)."""
    mel = any(re.match(r"^layers\.\d+\.2\.", k) for k in state)
    out = {}
    for key, value in state.items():
        if "value_residual_mix" in key:
            continue
        key = key.replace(".branch.", ".")
        if mel:
            key = re.sub(r"^layers\.(\d+)\.([12])\.", lambda m: f"layers.{m[1]}.{int(m[2]) - 1}.", key)
        out[key] = value
    return out


def ours_like(ref: torch.nn.Module, family: str, params: dict) -> torch.nn.Module:
    cls = model_class(family)
    p = cls.params_class(**params)
    model = cls(p, n_bins=p.stft_n_fft // 2 + 1, n_channels=2 if p.stereo else 1, n_stems=p.num_stems).eval()
    model.load_state_dict(msst_state(ref.state_dict()), strict=True)
    return model


# --- parity with the reference package, one forward ------------------------------------------


@pytest.mark.parametrize("zero_dc", [True, False])
def test_bs_roformer_matches_the_reference_forward_to_float_precision(zero_dc):
    torch.manual_seed(0)
    arch = dict(TINY, freqs_per_bands=TINY_BANDS, zero_dc=zero_dc)
    ref = reference_bs(**arch)
    ours = ours_like(ref, "bs_roformer", arch)
    x = torch.randn(2, 2, 32 * 60)  # 1.2.4 returns hop * (frames - 1) samples: a multiple of the hop
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape == (2, 2, 2, 32 * 60)
    for s in range(2):
        assert sdr(want[:, s], got[:, s]) > 100  # measured 139 dB: float32 rounding only


def test_mel_band_roformer_matches_the_reference_forward_to_float_precision():
    torch.manual_seed(1)
    ref = reference_mel(**TINY_MEL)
    ours = ours_like(ref, "mel_band_roformer", TINY_MEL)
    x = torch.randn(2, 2, 64 * 50 + 7)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape == (2, 2, 2, 64 * 50 + 7)
    for s in range(2):
        assert sdr(want[:, s], got[:, s]) > 100  # measured 171 dB and bit-identical


def test_mono_model_and_a_length_off_the_hop_grid():
    torch.manual_seed(2)
    arch = dict(TINY, stereo=False, num_stems=1)
    ref = reference_bs(**arch, freqs_per_bands=TINY_BANDS)
    ours = ours_like(ref, "bs_roformer", dict(arch, freqs_per_bands=TINY_BANDS))
    x = torch.randn(1, 1, 32 * 40)
    with torch.no_grad():
        assert sdr(ref(x), ours(x)[:, 0]) > 100  # 1.2.4 drops the stem axis for one stem
        odd = ours(torch.randn(3, 1, 1001))
    assert odd.shape == (3, 1, 1, 1001) and torch.isfinite(odd).all()


# --- the mel band layout -----------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "n_fft", "bands"), [(44100, 2048, 60), (44100, 2048, 128), (48000, 4096, 60),
                                                      (16000, 256, 12), (8000, 512, 32), (22050, 1024, 40)])
def test_mel_bands_are_the_bins_under_librosas_filters(rate, n_fft, bands):
    import librosa

    filters = torch.from_numpy(librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=bands))
    filters[0, 0] = filters[-1, -1] = 1.0  # MSST includes these two by decree
    assert torch.equal(mel_band_layout(rate, n_fft, bands), filters > 0)


# --- the published networks' size ---------------------------------------------------------------

PUBLISHED = dict(stereo=True, num_stems=1, time_transformer_depth=1, freq_transformer_depth=1, dim_head=64, heads=8,
                 stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048, mask_estimator_depth=2)


@pytest.mark.parametrize(("family", "extra", "file_bytes"), [
    # viperx's model_bs_roformer_ep_317_sdr_12.9755.ckpt and KimberleyJensen's MelBandRoformer.ckpt
    ("bs_roformer", dict(dim=512, depth=12), 639_331_213),
    ("mel_band_roformer", dict(dim=384, depth=6, num_bands=60), 913_106_900)])
def test_published_sizes_hold_as_many_weights_as_the_published_files(family, extra, file_bytes):
    cls = model_class(family)
    with torch.device("meta"):  # shapes only, no memory
        model = cls(cls.params_class(**PUBLISHED, **extra), n_bins=1025, n_channels=2, n_stems=1)
    state = model.state_dict()
    tensor_bytes = sum(v.numel() * v.element_size() for v in state.values())
    # the rest of the file is its zip records and pickle: about 430 bytes for each of ~700 tensors
    assert 0 < file_bytes - tensor_bytes < 0.001 * file_bytes
    assert "layers.0.0.layers.0.0.to_gates.weight" in state and "layers.0.1.layers.0.0.rotary_embed.freqs" in state
    assert ("final_norm.gamma" in state) == (family == "bs_roformer")
    assert ("layers.0.0.norm.gamma" in state) == (family == "mel_band_roformer")


# --- behaviour -------------------------------------------------------------------------------


def test_skip_connection_adds_every_earlier_block_output():
    # with empty transformers each block passes its input on, so the sums are visible: MSST adds
    # all stored earlier outputs to each block's input
    params = BSRoformerParams(**dict(TINY, depth=3, time_transformer_depth=0, freq_transformer_depth=0),
                              freqs_per_bands=TINY_BANDS)
    x = torch.randn(1, 5, 5, 32)
    for skip, factor in ((False, 1.0), (True, 5.0)):  # blocks: x -> x; x + x -> 2x; 2x + x + 2x -> 5x
        params.skip_connection = skip
        model = BSRoformer(params, n_bins=65, n_channels=2, n_stems=2)
        model.final_norm = torch.nn.Identity()
        assert torch.allclose(model._blocks(x), factor * x)


def test_trains_by_gradient_with_dropout():
    torch.manual_seed(4)
    params = MelBandRoformerParams(**dict(TINY_MEL, attn_dropout=0.1, ff_dropout=0.1))
    model = MelBandRoformer(params, n_bins=129, n_channels=2, n_stems=2).train()
    x, target = torch.randn(2, 2, 2000), torch.randn(2, 2, 2, 2000)
    loss = (model(x) - target).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.input_kind == "waveform" and model.output_kind == "waveforms" and model.context_frames() is None


@pytest.mark.parametrize(("family", "change", "shape", "match"), [
    ("bs_roformer", dict(stereo=False), dict(), "model.stereo"),
    ("bs_roformer", dict(num_stems=1), dict(), "model.num_stems"),
    ("bs_roformer", dict(freqs_per_bands=[4, 4, 8]), dict(), "model.freqs_per_bands"),
    ("bs_roformer", dict(), dict(n_bins=1025), "model.stft_n_fft"),
    ("bs_roformer", dict(stft_win_length=256), dict(), "model.stft_win_length"),
    ("bs_roformer", dict(attn_dropout=1.0), dict(), "model.attn_dropout"),
    ("mel_band_roformer", dict(num_bands=200), dict(), "bands without a bin"),
    ("mel_band_roformer", dict(depth=0), dict(), "model.depth")])
def test_settings_the_network_cannot_take_are_one_line_config_errors(family, change, shape, match):
    cls = model_class(family)
    base = dict(TINY_MEL if family == "mel_band_roformer" else dict(TINY, freqs_per_bands=TINY_BANDS))
    params = cls.params_class(**{**base, **change})
    where = {"n_bins": base["stft_n_fft"] // 2 + 1, "n_channels": 2, "n_stems": 2, **shape}
    with pytest.raises(ConfigError, match=match) as info:
        cls.check_params(params, **where)
    assert "\n" not in str(info.value)
