"""htdemucs and htdemucs_bag: the network gives the reference package's numbers for the same
weights (the installed demucs 4.1, random weights), the publisher's state dict loads key for key,
and what the implementation does not build is refused in one line."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import CONFIGS
from demucs.htdemucs import HTDemucs as Reference

from stemsplit.config import ConfigError, config_from_dict, load_config
from stemsplit.errors import ModelError
from stemsplit.models import build_model, count_parameters
from stemsplit.models.htdemucs import HTDemucs, HTDemucsParams
from stemsplit.models.htdemucs_bag import normalised_weights

SOURCES = ["drums", "bass", "other", "vocals"]
TINY = {"channels": 8, "depth": 2, "nfft": 512, "t_layers": 2, "t_heads": 2, "dconv_mode": 3, "bottom_channels": 16}


def _reference(kwargs: dict, segment=Fraction(1, 4), seed: int = 0) -> Reference:
    torch.manual_seed(seed)
    ref = Reference(sources=SOURCES, samplerate=44100, segment=segment, **kwargs).eval()
    with torch.no_grad():  # layer scales start near 0: give the residual branches a real share
        for name, p in ref.named_parameters():
            if name.endswith("scale"):
                p.normal_(0, 0.3)
    return ref


def _ours(kwargs: dict, segment: float = 0.25) -> HTDemucs:
    params = HTDemucsParams(**kwargs, segment=segment)
    return HTDemucs(params, n_bins=kwargs["nfft"] // 2 + 1, n_channels=2, n_stems=len(SOURCES)).eval()


def _sdr(ref: torch.Tensor, est: torch.Tensor) -> float:
    err = float((ref - est).pow(2).sum())
    return float("inf") if err == 0 else 10 * np.log10(float(ref.pow(2).sum()) / err)


@pytest.mark.parametrize("kwargs,length", [
    (TINY, 11025),                                                              # a full training segment
    (TINY, 4000),                                                               # shorter: zero-padded to it
    ({**TINY, "bottom_channels": 0, "t_cross_first": True, "t_layers": 3}, 9000),
    # depth 3 at nfft 256 folds the last frequency rows into one: the time branch merges into it
    ({"channels": 8, "depth": 3, "nfft": 256, "t_layers": 1, "t_heads": 2}, 7000),
    ({"channels": 8, "depth": 2, "nfft": 512, "t_layers": 1, "t_heads": 2, "freq_emb": 0.0, "rewrite": False,
      "norm_starts": 0, "norm_groups": 2, "dconv_mode": 2}, 6000),
])
def test_the_network_gives_the_reference_numbers(kwargs, length):
    ref = _reference(kwargs)
    ours = _ours(kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)  # the publisher's keys, unchanged
    x = torch.randn(2, 2, length) * 0.1
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == (2, 4, 2, length)
    assert _sdr(expected, got) > 120, _sdr(expected, got)  # float precision (measured: bit-identical)


def test_without_the_training_segment_any_length_goes():
    ref = Reference(sources=SOURCES, use_train_segment=False, **TINY).eval()
    ours = HTDemucs(HTDemucsParams(**TINY, use_train_segment=False), n_bins=257, n_channels=2, n_stems=4).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 2, 20000) * 0.1
    with torch.no_grad():
        assert _sdr(ref(x), ours(x)) > 120


def test_input_longer_than_the_training_segment_is_a_one_line_error():
    ours = _ours(TINY)
    with pytest.raises(ModelError, match=r"at most its training segment \(11025 samples, 0.25 s\).*--segment 0.25"):
        ours(torch.zeros(1, 2, 11026))


def test_the_published_size_matches_the_reference():
    """configs/htdemucs.yaml is the published htdemucs: 5 Transformer layers at 512 channels,
    residual branches in encoder and decoder (the reference package counts the same parameters)."""
    ours = build_model(load_config(CONFIGS / "htdemucs.yaml"))
    ref = Reference(sources=SOURCES, dconv_mode=3, bottom_channels=512, segment=Fraction(39, 5))
    assert count_parameters(ours) == sum(p.numel() for p in ref.parameters())
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert ours.training_length == 343980  # int(Fraction(39, 5) * 44100)


@pytest.mark.parametrize("override,match", [
    ("model.t_emb=cape", "model.t_emb: 'cape' is not supported"),
    ("model.cac=false", "model.cac: False is not supported"),
    ("model.wiener_iters=1", "model.wiener_iters: 1 is not supported"),
    ("model.t_sparse_self_attn=true", "sparse attention"),
    ("model.multi_freqs=[0.25]", "model.multi_freqs"),
    ("model.nfft=1000", "model.nfft: 1000 must be a power of two"),
    ("model.t_heads=7", "must be a multiple of t_heads"),
])
def test_what_is_not_built_is_refused_in_one_line(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(CONFIGS / "htdemucs.yaml", [override])
    assert "\n" not in str(info.value)


def _bag_config(weights: list[list[float]], members: int = 2) -> dict:
    member = {"name": "htdemucs", **TINY, "segment": 0.25}
    return {"audio": {"sample_rate": 44100, "channels": 2}, "stft": {"n_fft": 512, "hop_length": 128},
            "stems": SOURCES, "model": {"name": "htdemucs_bag", "members": [member] * members, "weights": weights},
            "separate": {"segment_seconds": 0.25, "crossfade": "triangle"}}


def test_a_bag_averages_its_members_per_stem():
    weights = [[1.0, 3.0, 0.0, 1.0], [1.0, 1.0, 2.0, 1.0]]
    bag = build_model(config_from_dict(_bag_config(weights))).eval()
    refs = [_reference(TINY, seed=s) for s in (1, 2)]
    for member, ref in zip(bag.members, refs):
        member.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 2, 5000) * 0.1
    with torch.no_grad():
        a, b = (r(x) for r in refs)
        got = bag(x)
    w = torch.tensor(weights)
    expected = (a * w[0].view(1, -1, 1, 1) + b * w[1].view(1, -1, 1, 1)) / w.sum(0).view(1, -1, 1, 1)
    assert _sdr(expected, got) > 120
    np.testing.assert_allclose(got[:, 2].numpy(), b[:, 2].numpy(), rtol=0, atol=1e-7)  # only b makes "other"


def test_bag_weights_are_normalised_and_checked():
    assert normalised_weights([], 2, 3) == [[0.5] * 3, [0.5] * 3]
    assert normalised_weights([[1, 0], [3, 2]], 2, 2) == [[0.25, 0.0], [0.75, 1.0]]
    with pytest.raises(ConfigError, match="stem 1's weights"):
        config_from_dict(_bag_config([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ConfigError, match="needs 2 rows"):
        config_from_dict(_bag_config([[1.0, 1.0, 1.0, 1.0]]))
    bad = _bag_config([])
    bad["model"]["members"] = [{"name": "lstm"}]
    with pytest.raises(ConfigError, match="is not a Hybrid Transformer Demucs network"):
        config_from_dict(bad)


def test_neither_family_exports_to_onnx():
    ours = _ours(TINY)
    with pytest.raises(ModelError, match="no ONNX export.*--runtime torch"):
        ours.export_module()
