"""scripts/package_models.py: the out-of-domain scores and the choice of default they feed."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import package_models  # noqa: E402

STEMS = ["vocals", "drums", "bass", "other"]


def _summary_csv(folder: Path, rows: dict[str, list[float]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "summary.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["model", "stem", "metric", "value"])
        for model, values in rows.items():
            for stem, value in zip(STEMS, values):
                out.writerow([model, stem, "gsdr", value])
    return folder


def test_out_of_domain_scores_are_recorded_and_weigh_in_the_choice_of_default(tmp_path):
    reg = {"models": {"musdb_only": {"stems": STEMS, "valid_gsdr_mean": 4.36},
                      "with_multitracks": {"stems": STEMS, "valid_gsdr_mean": 4.26}}}
    # valid alone picks the MUSDB-only model
    assert max(reg["models"], key=lambda n: package_models.selection_score(reg["models"][n])) == "musdb_only"
    ood = _summary_csv(tmp_path / "ood", {"musdb_only": [4.5, 0.3, 3.5, 1.5],
                                         "with_multitracks": [5.7, 3.0, 5.7, 1.1]})
    package_models._record_ood(reg, ood)
    assert reg["models"]["musdb_only"]["ood_gsdr_dbo"] == pytest.approx((0.3 + 3.5 + 1.5) / 3, abs=0.01)
    assert reg["models"]["with_multitracks"]["ood_gsdr"]["vocals"] == 5.7
    # (4.26 + 3.27) / 2 against (4.36 + 1.77) / 2
    assert package_models.selection_score(reg["models"]["with_multitracks"]) == pytest.approx(3.765, abs=0.01)
    assert max(reg["models"], key=lambda n: package_models.selection_score(reg["models"][n])) == "with_multitracks"


def test_a_model_missing_from_the_out_of_domain_run_is_named(tmp_path):
    reg = {"models": {"a": {"stems": STEMS}, "b": {"stems": STEMS}}}
    ood = _summary_csv(tmp_path / "ood", {"a": [1, 2, 3, 4]})
    with pytest.raises(SystemExit, match="no rows for 'b': evaluate it with --model b"):
        package_models._record_ood(reg, ood)


def _in_a_temporary_package(monkeypatch, tmp_path) -> dict:
    """package_models writing into tmp_path and an in-memory registry instead of the package."""
    reg = {"default": "x", "models": {}}
    monkeypatch.setattr(package_models, "PRETRAINED", tmp_path)
    monkeypatch.setattr(package_models, "load_registry", lambda: reg)
    monkeypatch.setattr(package_models, "save_registry", lambda r: None)
    monkeypatch.setattr(package_models, "write_onnx", lambda names=None: None)
    monkeypatch.setattr(package_models, "_speed", lambda name: 123.4)  # a 3-minute separation: not in a unit test
    return reg


def test_a_causal_model_is_packaged_as_a_streaming_model_with_its_latency(monkeypatch, tmp_path):
    from conftest import write_tiny_checkpoint

    reg = _in_a_temporary_package(monkeypatch, tmp_path)
    for arch in ("crnn_causal", "crnn"):
        run = tmp_path / arch
        run.mkdir()
        write_tiny_checkpoint(run / "best.ckpt", arch)
        package_models.add(arch, run, fp32=False, overrides=[])
    causal, offline = reg["models"]["crnn_causal"], reg["models"]["crnn"]
    assert causal["streaming"] is True
    assert causal["latency_samples"] == 511  # tiny n_fft 512, no look-ahead: n_fft - 1
    assert causal["latency_ms"] == round(511 / 44.1, 1)
    assert "streaming" not in offline and "latency_ms" not in offline
    assert (tmp_path / "crnn_causal.ckpt").is_file()


def test_stream_score_records_the_streamed_scores_and_the_streaming_default(monkeypatch, tmp_path):
    from conftest import write_tiny_checkpoint

    reg = _in_a_temporary_package(monkeypatch, tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    write_tiny_checkpoint(run / "best.ckpt", "crnn_causal")
    package_models.add("live", run, fp32=False, overrides=[])
    evals = _summary_csv(tmp_path / "eval", {"estimates": [4.0, 3.0, 2.0, 1.0], "mixture": [-5.0] * 4,
                                             "oracle-irm-mag": [8.0] * 4})
    with open(evals / "summary.csv", "a", newline="") as f:  # evaluate's mean rows and SDR rows too
        out = csv.writer(f)
        for model, mean in (("estimates", 2.5), ("mixture", -5.0), ("oracle-irm-mag", 8.0)):
            out.writerow([model, "mean", "gsdr", mean])
        for stem in STEMS:
            out.writerow(["estimates", stem, "SDR", 1.5])
    ood = _summary_csv(tmp_path / "ood", {"estimates": [4.0, 1.5, 4.0, 1.0]})
    package_models.stream_score("live", evals, ood)
    entry = reg["models"]["live"]
    assert entry["ood_gsdr_dbo"] == pytest.approx((1.5 + 4.0 + 1.0) / 3, abs=0.01)
    assert entry["speed_x_realtime"] == 123.4
    assert entry["valid_gsdr"] == {"vocals": 4.0, "drums": 3.0, "bass": 2.0, "other": 1.0}
    assert entry["valid_gsdr_mean"] == 2.5
    assert entry["headroom_closed"] == pytest.approx((2.5 + 5) / 13, abs=1e-3)
    assert reg["stream_default"] == "live" and reg["default"] == "x"
    reg["models"]["live"]["streaming"] = False
    with pytest.raises(SystemExit, match="not a streaming model"):
        package_models.stream_score("live", evals)


def test_set_changes_a_shipped_models_inference_defaults_and_add_keeps_its_int8_file(monkeypatch, tmp_path):
    import torch
    from conftest import write_tiny_checkpoint

    from stemsplit.checkpoint import load_checkpoint

    reg = _in_a_temporary_package(monkeypatch, tmp_path)
    written = []
    monkeypatch.setattr(package_models, "write_onnx", lambda names=None: written.append(names))
    run = tmp_path / "run"
    run.mkdir()
    write_tiny_checkpoint(run / "best.ckpt", "lstm")
    package_models.add("m", run, fp32=False, overrides=["separate.overlap=0.1"])
    before = torch.load(tmp_path / "m.ckpt", weights_only=True)["state_dict"]

    package_models.set_defaults("m", ["separate.overlap=0.02", "separate.wiener_iterations=1"])
    loaded = load_checkpoint(tmp_path / "m.ckpt")
    assert loaded.config.separate.overlap == 0.02 and loaded.config.separate.wiener_iterations == 1
    # the later value replaces the one given at add; the weights are untouched; the ONNX file follows
    assert loaded.meta["inference_overrides"] == ["separate.overlap=0.02", "separate.wiener_iterations=1"]
    after = torch.load(tmp_path / "m.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert reg["models"]["m"]["wiener_iterations"] == 1 and written[-1] == ["m"]
    with pytest.raises(SystemExit, match="inference defaults only"):
        package_models.set_defaults("m", ["model.hidden_size=8"])

    reg["models"]["m"]["onnx_int8_lstm"] = True  # `onnx m --int8 on`
    package_models.add("m", run, fp32=False, overrides=[])
    assert reg["models"]["m"]["onnx_int8_lstm"] is True
