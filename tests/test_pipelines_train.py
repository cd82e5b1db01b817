"""The run folder a new training run starts with: config.yaml and run.json, each whole or absent."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CONFIGS

from stemsplit.data.cache import DataError
from stemsplit.pipelines.train import TrainOptions, run_train


def _start(tmp_path):
    """A new run whose dataset does not exist: it stops right after writing the run folder."""
    return run_train(TrainOptions(config=CONFIGS / "lstm.yaml", data=tmp_path / "no-dataset",
                                  out=tmp_path / "run", device="cpu"))


def test_a_new_run_records_its_config_and_origin(tmp_path):
    with pytest.raises(DataError, match="no-dataset"):
        _start(tmp_path)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "run.json"]
    info = json.loads((run / "run.json").read_text())
    assert info["recipe"] == str(CONFIGS / "lstm.yaml") and info["device"] == "cpu"
    assert info["data_root"] == str((tmp_path / "no-dataset").resolve())
    assert "model:" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("name", ["config.yaml", "run.json"])
def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, name):
    """The disk fills up as ``name`` is written: the file is absent, not half-written, and no
    temporary file is left behind."""
    real_replace = os.replace

    def disk_full_at_rename(src, dst):
        if Path(dst).name == name:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_at_rename)
    with pytest.raises(OSError, match="No space left"):
        _start(tmp_path)
    left = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert left == ([] if name == "config.yaml" else ["config.yaml"])
