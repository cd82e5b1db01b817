"""`stemsplit ensemble`: fit per-stem weights of trained members on a prepared split, through the CLI."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import write_tiny_checkpoint
from test_training_corpus import make_corpus
from typer.testing import CliRunner

from stemsplit.checkpoint import load_checkpoint
from stemsplit.cli import app
from stemsplit.models import ensemble_family
from stemsplit.pipelines.ensemble import fit_weights

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two tiny lstm members (different seeds) and a prepared dataset with two valid tracks."""
    root = tmp_path_factory.mktemp("ens")
    members = [str(write_tiny_checkpoint(root / f"m{i}.ckpt", "lstm", seed=i)) for i in range(2)]
    return root, members, make_corpus(root / "data", n_train=1, n_valid=2, seconds=1.0)


def _one_error_line(res) -> str:
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def test_ensemble_writes_a_checkpoint_of_the_fitted_weights(setup, tmp_path):
    root, members, data = setup
    out = tmp_path / "new" / "folder" / "ens.ckpt"  # missing folders are made
    res = runner.invoke(app, ["ensemble", *members, "--data", str(data), "--step", "0.25", "-o", str(out),
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    # progress: one line per separated track, then each stem's fit
    assert "separating valid track 1/2 with 2 members: song1" in res.output
    assert "separating valid track 2/2 with 2 members: song2" in res.output
    assert "fitting the weights of vocals: 5 combinations" in res.output
    assert f"wrote {out}" in res.output
    ens = load_checkpoint(out)
    assert ens.config.model.name == ensemble_family().name
    assert len(ens.model.members) == 2
    # the same fit as the pipeline's on the same data (the fit is deterministic)
    fit, _ = fit_weights(members, data, "valid", 0.25, "cpu")
    assert ens.config.model.params.weights == fit.weights
    assert ens.meta["ensemble"]["members"] == members
    assert ens.meta["ensemble"]["ensemble_gsdr_mean"] == fit.ensemble_scores
    for member, row in zip(members, fit.weights):
        assert f"weights of {member}: vocals {row[0]:g}, drums {row[1]:g}" in res.output
    assert "ensemble" in res.output and f"{fit.ensemble_scores['vocals']:6.2f}" in res.output


def test_the_split_and_the_wiener_default_are_honoured(setup, tmp_path):
    root, members, data = setup
    out = tmp_path / "ens.ckpt"
    res = runner.invoke(app, ["ensemble", *members, "--data", str(data), "--split", "train", "--step", "0.5",
                              "--wiener-iterations", "1", "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "separating train track 1/1 with 2 members: song0" in res.output
    ens = load_checkpoint(out)
    assert ens.config.separate.wiener_iterations == 1
    assert ens.meta["ensemble"]["fitted_on"] == "data train (1 tracks)"
    assert all(w in (0.0, 0.5, 1.0) for row in ens.config.model.params.weights for w in row)


@pytest.mark.parametrize("case,match", [
    ("one member", "at least two member models"),
    ("step 0.3", "--step 0.3: must divide 1"),
    ("step 0", "--step 0: must be in (0, 1]"),
    ("step nan", "--step nan: must be a finite number"),
    ("wiener -1", "--wiener-iterations -1: must be >= 0"),
    ("bad device", "--device 'gpu7': not a device"),
    ("no data", "dataset folder not found"),
    ("no split", "no split 'test'; the splits are: train, valid"),
    ("missing member", "nope.ckpt"),
    ("out is a folder", "is a folder; name the checkpoint file to write"),
])
def test_bad_input_is_one_line_and_writes_nothing(setup, tmp_path, case, match):
    root, members, data = setup
    out = tmp_path / "ens.ckpt"
    args = {"one member": [members[0], "--data", str(data)],
            "step 0.3": [*members, "--data", str(data), "--step", "0.3"],
            "step 0": [*members, "--data", str(data), "--step", "0"],
            "step nan": [*members, "--data", str(data), "--step", "nan"],
            "wiener -1": [*members, "--data", str(data), "--wiener-iterations", "-1"],
            "bad device": [*members, "--data", str(data), "--device", "gpu7"],
            "no data": [*members, "--data", str(tmp_path / "missing")],
            "no split": [*members, "--data", str(data), "--split", "test"],
            "missing member": [members[0], str(tmp_path / "nope.ckpt"), "--data", str(data)],
            "out is a folder": [*members, "--data", str(data)]}[case]
    target = tmp_path if case == "out is a folder" else out
    before = sorted(tmp_path.iterdir())
    res = runner.invoke(app, ["ensemble", *args, "-o", str(target), "--device", "cpu"]
                        if "--device" not in args else ["ensemble", *args, "-o", str(target)])
    assert match in _one_error_line(res)
    assert sorted(tmp_path.iterdir()) == before


def test_members_must_match_each_other_and_the_data(setup, tmp_path):
    root, members, data = setup
    other_stft = write_tiny_checkpoint(tmp_path / "hop.ckpt", "lstm", ["stft.hop_length=256"])
    res = runner.invoke(app, ["ensemble", members[0], str(other_stft), "--data", str(data), "-o",
                              str(tmp_path / "a.ckpt"), "--device", "cpu"])
    assert "members must share stems, STFT and audio settings" in _one_error_line(res)
    slow = [str(write_tiny_checkpoint(tmp_path / f"sr{i}.ckpt", "lstm", ["audio.sample_rate=22050"], seed=i))
            for i in range(2)]
    res = runner.invoke(app, ["ensemble", *slow, "--data", str(data), "-o", str(tmp_path / "b.ckpt"),
                              "--device", "cpu"])
    line = _one_error_line(res)
    assert "44100 Hz, 2 channel(s), but the members separate 22050 Hz" in line
    assert not (tmp_path / "a.ckpt").exists() and not (tmp_path / "b.ckpt").exists()


def test_the_ensemble_separates_like_its_weighted_members(setup, tmp_path):
    """The written checkpoint is a working model: its stems are the weighted sum of its members'."""
    from conftest import tone_mix

    from stemsplit.separation.torch_runner import torch_engine
    from stemsplit.settings import EngineSettings

    root, members, data = setup
    out = tmp_path / "ens.ckpt"
    assert runner.invoke(app, ["ensemble", *members, "--data", str(data), "--step", "0.25", "-o", str(out),
                               "--device", "cpu"]).exit_code == 0
    plain = EngineSettings(wiener_iterations=0, device="cpu")
    mix = tone_mix(2.0, seed=4)
    ens = load_checkpoint(out)
    together = torch_engine(ens, plain).separate(mix)
    w = np.asarray(ens.config.model.params.weights, dtype=np.float32)
    singles = [torch_engine(load_checkpoint(m), plain).separate(mix) for m in members]
    np.testing.assert_allclose(together, sum(w[i][:, None, None] * singles[i] for i in range(2)), atol=1e-5, rtol=0)
