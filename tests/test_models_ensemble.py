"""The ensemble family: members' masks with per-stem weights, fitted on a split, run as one model."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tone_mix, write_tiny_checkpoint
from test_training_corpus import make_corpus

from stemsplit import pretrained
from stemsplit.checkpoint import load_checkpoint
from stemsplit.config import ConfigError, load_config
from stemsplit.models import ensemble_family
from stemsplit.pipelines.ensemble import simplex_grid, write_ensemble
from stemsplit.resolver import load_torch
from stemsplit.separation.torch_runner import torch_engine
from stemsplit.settings import EngineSettings

NO_WIENER = EngineSettings(wiener_iterations=0, device="cpu")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("bag")
    return root, [str(write_tiny_checkpoint(root / f"m{i}.ckpt", "lstm", seed=i)) for i in range(2)]


def test_simplex_grid():
    grid = simplex_grid(3, 0.5)
    assert sorted(grid) == sorted([(0, 0, 1), (0, 0.5, 0.5), (0, 1, 0), (0.5, 0, 0.5), (0.5, 0.5, 0), (1, 0, 0)])
    assert len(simplex_grid(2, 0.05)) == 21
    with pytest.raises(ConfigError, match="must divide 1"):
        simplex_grid(2, 0.3)


def test_the_bag_separates_like_the_weighted_average_of_its_members(members, tmp_path):
    root, paths = members
    corpus = make_corpus(tmp_path / "ds", n_train=1, n_valid=2)
    fit = write_ensemble(paths, corpus, tmp_path / "bag.ckpt", step=0.25)
    bag = load_checkpoint(tmp_path / "bag.ckpt")
    assert bag.config.model.name == ensemble_family().name
    assert bag.config.model.params.weights == fit.weights
    for s in range(4):  # every stem's weights are on the grid and sum to 1
        column = [row[s] for row in fit.weights]
        assert sum(column) == pytest.approx(1.0) and all(w in (0, 0.25, 0.5, 0.75, 1.0) for w in column)
    for stem, score in fit.ensemble_scores.items():  # the fit is at least as good as each member alone
        assert score >= max(fit.member_scores[m][stem] for m in paths) - 1e-6

    mix = tone_mix(3.0, seed=5)
    together = torch_engine(bag, NO_WIENER).separate(mix)
    singles = [torch_engine(load_checkpoint(p), NO_WIENER).separate(mix) for p in paths]
    w = np.asarray(fit.weights, dtype=np.float32)                       # (members, stems)
    expected = sum(w[i][:, None, None] * singles[i] for i in range(2))
    np.testing.assert_allclose(together, expected, rtol=0, atol=1e-5)


def test_weights_and_members_are_checked():
    with pytest.raises(ConfigError, match="must be >= 0 and sum to 1"):
        load_config(None, ["model.name=mask_ensemble", "model.members=[{name: lstm}, {name: lstm}]",
                           "model.weights=[[1,1,1,1],[1,1,1,1]]"])
    with pytest.raises(ConfigError, match="needs 2 rows"):
        load_config(None, ["model.name=mask_ensemble", "model.members=[{name: lstm}, {name: lstm}]",
                           "model.weights=[[1,1,1,1]]"])
    with pytest.raises(ConfigError, match="model.members\\[0\\].name: unknown model"):
        load_config(None, ["model.name=mask_ensemble", "model.members=[{name: nope}]", "model.weights=[[1,1,1,1]]"])


def test_members_must_share_the_stft(members, tmp_path):
    root, paths = members
    other = write_tiny_checkpoint(tmp_path / "other.ckpt", "lstm", ["stft.hop_length=256"])
    corpus = make_corpus(tmp_path / "ds", n_train=1, n_valid=1)
    with pytest.raises(ConfigError, match="members must share stems, STFT and audio settings"):
        write_ensemble([paths[0], str(other)], corpus, tmp_path / "bag.ckpt")


BAGS = [m for m in pretrained.list_models() if "ensemble_weights" in m]


@pytest.mark.parametrize("entry", BAGS, ids=[m["name"] for m in BAGS])
def test_shipped_ensembles_take_their_weights_from_the_registry(entry):
    loaded = load_torch(entry["name"])
    assert loaded.config.model.params.weights == entry["ensemble_weights"]
    assert len(loaded.model.members) == len(entry["members"])
    stems = torch_engine(loaded).separate(tone_mix(4.0, seed=2))
    assert stems.shape[0] == 4 and np.isfinite(stems).all()
    assert loaded.config.model.name == ensemble_family().name


@pytest.mark.parametrize("entry", BAGS, ids=[m["name"] for m in BAGS])
def test_shipped_ensembles_name_the_ensemble_family_in_both_files(entry):
    """The ONNX file carries the checkpoint's config too; the ONNX runtime never builds the
    model from it, so only this test sees a stale family name there."""
    import json

    import onnx

    from stemsplit.onnx_format import META_KEY

    assert entry["architecture"] == ensemble_family().name
    proto = onnx.load(pretrained.model_file(entry["onnx"]), load_external_data=False)
    info = json.loads({p.key: p.value for p in proto.metadata_props}[META_KEY])
    assert info["config"]["model"]["name"] == ensemble_family().name
    assert info["ensemble"]["weights"] == entry["ensemble_weights"]
