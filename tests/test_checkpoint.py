import pytest
import torch
from conftest import tiny_config, write_tiny_checkpoint

from stemsplit.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from stemsplit.models import build_model


def test_checkpoint_is_self_describing_and_loads_weights_only(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.ckpt", "lstm")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == 1
    assert raw["model"]["name"] == "lstm" and raw["model"]["args"]["n_stems"] == 4
    assert raw["stems"] == ["vocals", "drums", "bass", "other"]
    assert raw["sample_rate"] == 44100 and "config" in raw and "meta" in raw


def test_half_precision_storage_loads_as_float32(tmp_path):
    cfg = tiny_config("unet")
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "h.ckpt", model, cfg, half=True)
    assert read_checkpoint(tmp_path / "h.ckpt")["state_dict"]["head.weight"].dtype == torch.float16
    loaded = load_checkpoint(tmp_path / "h.ckpt")
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.ckpt", "mask_cnn")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable stemsplit checkpoint"):
        load_checkpoint(path)


def test_foreign_files_give_clear_errors(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a stemsplit checkpoint"):
        load_checkpoint(other)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable stemsplit checkpoint"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"format": 1, "state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_mismatched_weights_are_reported(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.ckpt", "lstm")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"].pop(next(iter(raw["state_dict"])))
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(path)


def test_a_checkpoint_written_before_a_family_gained_a_field_still_loads(tmp_path):
    """Old files lack a new parameter in their header and config: it takes its default."""
    from stemsplit.checkpoint import CheckpointError, checkpoint_dict, model_from_checkpoint

    cfg = tiny_config("unet")
    ckpt = checkpoint_dict(build_model(cfg), cfg)
    for section in (ckpt["model"]["args"], ckpt["config"]["model"]):  # unet's freq_coords came later
        del section["freq_coords"]
    assert model_from_checkpoint(ckpt).config == cfg
    ckpt["model"]["args"]["base_channels"] += 1  # a stored value that disagrees is still refused
    with pytest.raises(CheckpointError, match="'model' header"):
        model_from_checkpoint(ckpt)
