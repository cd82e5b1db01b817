"""The U-Net's export form: its transposed convolutions as sub-pixel convolutions, same numbers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from stemsplit.config import STFTConfig
from stemsplit.models.unet import SubpixelConvTranspose, UNet, UNetParams


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("size", [(1, 1), (4, 7), (9, 16)])
def test_subpixel_equals_the_transposed_convolution(kernel, size):
    torch.manual_seed(kernel)
    layer = nn.ConvTranspose2d(6, 5, kernel, stride=2, padding=(kernel - 1) // 2, output_padding=1)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        want, got = layer(x), SubpixelConvTranspose(layer)(x)
    assert got.shape == want.shape == (2, 5, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_other_transposed_convolutions_are_refused():
    with pytest.raises(ValueError, match="stride 2"):
        SubpixelConvTranspose(nn.ConvTranspose2d(2, 2, 5, stride=1, padding=2))
    with pytest.raises(ValueError, match="stride 2"):
        SubpixelConvTranspose(nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, output_padding=1))


def test_export_module_gives_the_same_masks_and_leaves_the_model_alone():
    torch.manual_seed(0)
    n_bins = STFTConfig(n_fft=512, hop_length=128).n_fft // 2 + 1
    model = UNet(UNetParams(base_channels=4, depth=4, max_bin=128), n_bins=n_bins, n_channels=2, n_stems=3).eval()
    exported = model.export_module()
    assert sum(isinstance(b[0], SubpixelConvTranspose) for b in exported.up) == 3
    assert all(isinstance(b[0], nn.ConvTranspose2d) for b in model.up)  # the model itself is unchanged
    mag = torch.rand(2, 2, n_bins, 37) * 3
    with torch.no_grad():
        torch.testing.assert_close(exported(mag), model(mag), atol=1e-5, rtol=1e-5)
