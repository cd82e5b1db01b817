import torch
from conftest import CONFIGS, tiny_config

from stemsplit.checkpoint import load_checkpoint, save_checkpoint
from stemsplit.config import load_config
from stemsplit.models import build_model, count_parameters, names


def _mag(cfg, frames=40, batch=2):
    return torch.rand(batch, cfg.audio.channels, cfg.n_bins, frames) * 3


def test_registry_holds_the_card_architectures():
    assert {"mask_cnn", "lstm", "unet"} <= set(names())


def test_output_shape_and_mask_range(arch):
    cfg = tiny_config(arch)
    model = build_model(cfg).eval()
    for frames in (1, 37, 64):
        masks = model(_mag(cfg, frames))
        assert masks.shape == (2, len(cfg.stems), cfg.audio.channels, cfg.n_bins, frames)
        assert masks.min() >= 0 and masks.max() <= 1 and torch.isfinite(masks).all()


def test_save_load_gives_the_same_output(arch, tmp_path):
    cfg = tiny_config(arch)
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "m.ckpt", model, cfg)
    loaded = load_checkpoint(tmp_path / "m.ckpt")
    x = _mag(cfg)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert loaded.config == cfg


def test_mask_cnn_matches_the_seed_study_shape():
    cfg = load_config(CONFIGS / "mask_cnn.yaml")
    assert cfg.n_bins == 513 and cfg.model.params.context_frames == 25
    per_stem = count_parameters(build_model(cfg)) / len(cfg.stems)
    assert 0.2e6 < per_stem < 0.4e6


def test_mask_cnn_receptive_field_is_exactly_the_context_window():
    cfg = tiny_config("mask_cnn")
    model = build_model(cfg).eval()
    x = _mag(cfg, frames=60, batch=1)
    y = x.clone()
    y[..., 45] += 5.0  # a change at frame 45 may only affect frames 33..57
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().amax(dim=(0, 1, 2, 3))
    changed = torch.nonzero(diff > 0).flatten()
    assert changed.min() >= 45 - 12 and changed.max() <= 45 + 12


def test_mask_cnn_windows_equal_a_per_frame_evaluation():
    """The fully convolutional form computes what a per-window network would, frame by frame."""
    cfg = tiny_config("mask_cnn")
    model = build_model(cfg).eval()
    x = _mag(cfg, frames=30, batch=1)
    with torch.no_grad():
        full = model(x)
        for t in (0, 12, 29):
            window = torch.nn.functional.pad(x, (12, 12))[..., t : t + 25]
            centre = model(window)[..., 12]
            assert torch.allclose(centre, full[..., t], atol=1e-6)


def test_unet_freq_coords_let_it_tell_one_register_from_another():
    """A spectrogram that is the same at every bin: without the frequency channel the U-Net's
    masks repeat along frequency (shift-equivariant convolutions, per-bin normalisation), with it
    they do not (without it the shipped unet's bass mask is flat across frequency)."""
    x = torch.full((1, 2, 257, 32), 0.7)
    for coords, repeats in ((False, True), (True, False)):
        cfg = tiny_config("unet", [f"model.freq_coords={str(coords).lower()}"])
        torch.manual_seed(0)
        masks = build_model(cfg).eval()(x)
        same = torch.allclose(masks[..., 56, :], masks[..., 64, :], atol=1e-6)  # 8 bins = the depth-3 stride
        assert same == repeats, coords
