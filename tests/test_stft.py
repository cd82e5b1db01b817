import torch

from stemsplit.audio.stft import STFT
from stemsplit.config import STFTConfig


def test_round_trip_is_exact_for_every_shipped_setting():
    torch.manual_seed(0)
    for n_fft, hop in [(1024, 512), (1024, 256), (4096, 1024), (512, 128)]:
        stft = STFT(STFTConfig(n_fft=n_fft, hop_length=hop))
        x = torch.randn(2, 2, 20011)
        spec = stft(x)
        assert spec.shape == (2, 2, n_fft // 2 + 1, stft.num_frames(20011))
        y = stft.inverse(spec, 20011)
        assert ((y - x).norm() / x.norm()) < 1e-6


def test_very_short_signals_do_not_fail():
    stft = STFT(STFTConfig(n_fft=4096, hop_length=1024))
    x = torch.randn(2, 100)
    assert torch.allclose(stft.inverse(stft(x), 100), x, atol=1e-5)
