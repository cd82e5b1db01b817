"""The excerpt loader: shapes, determinism, every augmentation, and the full-track iterator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stemsplit.config import AugmentConfig, load_config
from stemsplit.data.augment import Warp, draw_warp
from stemsplit.data.cache import CacheWriter, DataError, PreparedDataset
from stemsplit.data.dataset import ExcerptDataset, iter_full_tracks
from stemsplit.errors import ConfigError
from stemsplit.training.checks import check_train_config

STEMS = ["vocals", "drums", "bass", "other"]
SR = 8000
NO_AUG = AugmentConfig(random_mix=False, gain_db=0.0, channel_swap=False, drop_silent=False)


def _code(track: int, stem: int) -> float:
    """A level that names (track, stem); int16 storage keeps it to about 1e-5."""
    return (track * 8 + stem + 1) / 256.0


@pytest.fixture
def coded(tmp_path) -> PreparedDataset:
    """Tracks whose every sample says which track and stem it is; right = left + 1/1024."""
    writer = CacheWriter(tmp_path / "ds", SR, STEMS, source="test")
    for t in range(6):
        stems = {}
        for s, stem in enumerate(STEMS):
            audio = np.full((2, SR * (1 + t % 3)), _code(t, s), dtype=np.float32)
            audio[1] += 1 / 1024
            stems[stem] = audio
        writer.add_track(f"t{t}", "train" if t < 5 else "valid", stems, source_hash=str(t))
    writer.finalize()
    return PreparedDataset(tmp_path / "ds")


def _decode(sources: torch.Tensor) -> list[int]:
    """Track index of each stem of an un-augmented excerpt."""
    left = sources[:, 0, 0].double().numpy()
    return [int(round(v * 256 - 1 - s)) // 8 for s, v in enumerate(left)]


def test_shapes_sum_and_determinism(coded):
    ds = ExcerptDataset([coded], "train", STEMS, 4000, 12, AugmentConfig(), seed=3)
    assert len(ds) == 12
    mix, src = ds[5]
    assert mix.shape == (2, 4000) and src.shape == (4, 2, 4000)
    assert mix.dtype == torch.float32 and src.dtype == torch.float32
    assert torch.equal(mix, src.sum(0))
    again = ExcerptDataset([coded], "train", STEMS, 4000, 12, AugmentConfig(), seed=3)
    assert torch.equal(again[5][1], src)
    other_seed = ExcerptDataset([coded], "train", STEMS, 4000, 12, AugmentConfig(), seed=4)
    assert not torch.equal(other_seed[5][1], src)
    ds.set_epoch(1)
    assert not torch.equal(ds[5][1], src)
    with pytest.raises(IndexError):
        ds[12]


def test_without_random_mix_stems_share_a_track(coded):
    ds = ExcerptDataset([coded], "train", STEMS, 2000, 40, NO_AUG, seed=0)
    seen = set()
    for i in range(len(ds)):
        tracks = _decode(ds[i][1])
        assert len(set(tracks)) == 1 and tracks[0] < 5  # never the valid track
        seen.add(tracks[0])
    assert seen == {0, 1, 2, 3, 4}


def test_random_mix_draws_stems_from_different_tracks(coded):
    aug = AugmentConfig(random_mix=True, gain_db=0.0, channel_swap=False, drop_silent=False)
    ds = ExcerptDataset([coded], "train", STEMS, 2000, 20, aug, seed=0)
    mixed = sum(len(set(_decode(ds[i][1]))) > 1 for i in range(len(ds)))
    assert mixed >= 15


def test_gain_and_channel_swap(coded):
    aug = AugmentConfig(random_mix=False, gain_db=6.0, channel_swap=False, drop_silent=False)
    ds = ExcerptDataset([coded], "train", STEMS, 1000, 20, aug, seed=0)
    ratios = []
    for i in range(len(ds)):
        _, src = ds[i]
        track = _decode(ExcerptDataset([coded], "train", STEMS, 1000, 20, NO_AUG, seed=0)[i][1])[0]
        base = torch.tensor([_code(track, s) for s in range(4)])
        ratios.append((src[:, 0, 0] / base).numpy())
    ratios = np.concatenate(ratios)
    assert ratios.min() >= 10 ** (-6 / 20) - 1e-4 and ratios.max() <= 10 ** (6 / 20) + 1e-4
    assert ratios.std() > 0.1  # gains differ per stem and excerpt

    swap = AugmentConfig(random_mix=False, gain_db=0.0, channel_swap=True, drop_silent=False)
    ds = ExcerptDataset([coded], "train", STEMS, 1000, 20, swap, seed=0)
    swapped = np.concatenate([(ds[i][1][:, 0, 0] > ds[i][1][:, 1, 0]).numpy() for i in range(20)])
    assert 0.25 < swapped.mean() < 0.75  # each stem swaps with probability 1/2


def test_drop_silent_redraws_silent_excerpts(tmp_path):
    writer = CacheWriter(tmp_path / "ds", SR, STEMS, source="test")
    loud = {s: np.full((2, SR * 4), 0.1, dtype=np.float32) for s in STEMS}
    quiet = {s: np.zeros((2, SR), dtype=np.float32) for s in STEMS}
    writer.add_track("loud", "train", loud)
    writer.add_track("quiet", "train", quiet)
    writer.finalize()
    ds_root = PreparedDataset(tmp_path / "ds")
    for random_mix in (False, True):
        keep = AugmentConfig(random_mix=random_mix, gain_db=0, channel_swap=False, drop_silent=False)
        drop = AugmentConfig(random_mix=random_mix, gain_db=0, channel_swap=False, drop_silent=True)
        kept = ExcerptDataset([ds_root], "train", STEMS, 2000, 40, keep, seed=1)
        dropped = ExcerptDataset([ds_root], "train", STEMS, 2000, 40, drop, seed=1)
        silent = lambda d: sum(bool((d[i][1].abs().amax(dim=(1, 2)) == 0).any()) for i in range(40))  # noqa: E731
        assert silent(kept) > 0 and silent(dropped) == 0


def test_warp_shifts_pitch_and_keeps_length():
    t = np.arange(SR * 2) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)[None, None].repeat(2, axis=1)

    def peak_hz(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x[0, 0] * np.hanning(x.shape[-1])))
        return float(np.argmax(spec) * SR / x.shape[-1])

    for warp, want in [(Warp(12.0, 1.0), 880), (Warp(0.0, 1.25), 440), (Warp(-5.0, 0.8), 440 * 2 ** (-5 / 12))]:
        out_frames = 8000
        source = tone[..., :warp.input_frames(out_frames)]
        out = warp.apply(source, out_frames)
        assert out.shape == (1, 2, out_frames) and out.dtype == np.float32
        assert abs(peak_hz(out) - want) < 0.02 * want


def test_pitch_and_stretch_augmentation_in_the_loader(coded):
    aug = AugmentConfig(pitch_shift_semitones=2.0, time_stretch=0.2)
    ds = ExcerptDataset([coded], "train", STEMS, 3000, 4, aug, seed=0)
    mix, src = ds[0]
    assert src.shape == (4, 2, 3000) and torch.allclose(mix, src.sum(0))


def test_warp_probability_warps_that_share_of_excerpts():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(pitch_shift_semitones=2.0, time_stretch=0.1, warp_probability=0.2)
    warped = sum(not draw_warp(cfg, rng).identity for _ in range(2000))
    assert 320 < warped < 480  # 400 expected; binomial sd ~18
    every = AugmentConfig(pitch_shift_semitones=2.0, warp_probability=1.0)
    assert all(not draw_warp(every, rng).identity for _ in range(50))
    with pytest.raises(ConfigError, match="warp_probability"):
        load_config(None, ["data.augment.warp_probability=0"])


def test_bad_loader_arguments(coded, tmp_path):
    with pytest.raises(DataError, match="no stem 'piano'"):
        ExcerptDataset([coded], "train", ["piano"], 100, 4, None, 0)
    with pytest.raises(DataError, match="no split 'test'"):
        ExcerptDataset([coded], "test", STEMS, 100, 4, None, 0)
    writer = CacheWriter(tmp_path / "other", 16000, STEMS, source="test")
    writer.add_track("x", "train", {s: np.zeros((2, 100), np.float32) + 0.1 for s in STEMS})
    writer.finalize()
    with pytest.raises(DataError, match="prepare both at one sample rate"):
        ExcerptDataset([coded, PreparedDataset(tmp_path / "other")], "train", STEMS, 100, 4, None, 0)


def test_several_datasets_and_a_dataloader_worker(coded):
    ds = ExcerptDataset([coded, coded], "train", ["vocals", "bass"], 1000, 6, AugmentConfig(), seed=2)
    assert len(ds.items) == 10
    direct = torch.stack([ds[i][1] for i in range(6)])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
    assert torch.equal(torch.cat([src for _, src in loader]), direct)
    mix, src = ds[[0, 1, 2]]  # a list of indices is a batch
    assert src.shape == (3, 2, 2, 1000) and torch.equal(src, direct[:3]) and torch.equal(mix, src.sum(1))


def test_fast_loader_matches_the_dataset(coded):
    ds = ExcerptDataset([coded], "train", STEMS, 1500, 8, AugmentConfig(), seed=4)
    direct = torch.stack([ds[i][1] for i in range(8)])
    assert ds.raw_transport
    for workers in (0, 1):
        loader = ds.loader(batch_size=3, num_workers=workers)
        batches = list(loader)
        assert len(loader) == 2 and len(batches) == 2  # the last partial batch is dropped
        mix = torch.cat([m for m, _ in batches])
        src = torch.cat([s for _, s in batches])
        assert src.shape == (6, 4, 2, 1500) and src.dtype == torch.float32
        torch.testing.assert_close(src, direct[:6], rtol=0, atol=1e-6)
        torch.testing.assert_close(mix, src.sum(1), rtol=0, atol=1e-6)
    warped = ExcerptDataset([coded], "train", STEMS, 1500, 4, AugmentConfig(time_stretch=0.1), seed=4)
    assert not warped.raw_transport
    (mix, src), = list(warped.loader(batch_size=4, num_workers=1))
    assert torch.equal(src, torch.stack([warped[i][1] for i in range(4)]))


def test_iter_full_tracks(coded):
    items = list(iter_full_tracks(coded, "valid", ["drums", "vocals"]))
    assert [name for name, _, _ in items] == ["t5"]
    name, mix, src = items[0]
    assert mix.shape == (2, SR * 3) and src.shape == (2, 2, SR * 3) and src.dtype == np.float32
    assert abs(src[0, 0, 0] - _code(5, 1)) < 1e-4 and abs(src[1, 0, 0] - _code(5, 0)) < 1e-4
    np.testing.assert_allclose(mix, coded.load_track("t5")["mixture"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_decodes_on_the_gpu(coded):
    ds = ExcerptDataset([coded], "train", STEMS, 1500, 4, AugmentConfig(), seed=4)
    (mix, src), = list(ds.loader(batch_size=4, device="cuda"))
    assert src.device.type == "cuda" and src.dtype == torch.float32
    direct = torch.stack([ds[i][1] for i in range(4)])
    torch.testing.assert_close(src.cpu(), direct, rtol=0, atol=1e-6)
    torch.testing.assert_close(mix, src.sum(1))


def test_dataset_weights_set_each_datasets_share_of_the_draws(coded, tmp_path):
    """Two datasets of very different length: by duration the long one dominates; with weights
    [1, 1] each gets about half of the draws, and weight 0 excludes a dataset."""
    writer = CacheWriter(tmp_path / "short", coded.sample_rate, STEMS, source="test")
    writer.add_track("short", "train", {s: np.full((2, 3000), 0.5, np.float32) for s in STEMS})
    writer.finalize()
    short = PreparedDataset(tmp_path / "short")

    def share_of_short(weights):
        ds = ExcerptDataset([coded, short], "train", STEMS, 1000, 400, NO_AUG, seed=1, weights=weights)
        return np.mean([ds.items[ds._draw_position(ds._rng(i), 1000)[0]][0] == 1 for i in range(400)])

    by_length = share_of_short(None)
    assert by_length < 0.2
    assert 0.4 < share_of_short([1.0, 1.0]) < 0.6
    assert share_of_short([1.0, 0.0]) == 0.0 and share_of_short([0.0, 1.0]) == 1.0
    with pytest.raises(DataError, match="data.weights"):
        ExcerptDataset([coded, short], "train", STEMS, 1000, 4, NO_AUG, seed=1, weights=[1.0])


def test_stem_dropout_silences_stems_but_never_all(coded):
    aug = AugmentConfig(random_mix=False, gain_db=0.0, channel_swap=False, drop_silent=False, stem_dropout=0.5)
    ds = ExcerptDataset([coded], "train", STEMS, 500, 200, aug, seed=0)
    silent = np.array([[float(src[s].abs().max()) == 0.0 for s in range(4)] for _, src in (ds[i] for i in range(200))])
    assert 0.35 < silent.mean() < 0.6          # about half of the stems, a little less: never all four
    assert not silent.all(axis=1).any()
    mix, src = ds[3]
    assert torch.equal(mix, src.sum(0))       # the mixture is what is left
    plain = ExcerptDataset([coded], "train", STEMS, 500, 20, NO_AUG, seed=0)
    assert not any(float(plain[i][1][s].abs().max()) == 0.0 for i in range(20) for s in range(4))


def test_stem_dropout_per_stem_silences_only_the_named_stems(coded):
    """[0.5, 0, 0, 0]: about half the excerpts lose their vocals; drums, bass and other never go."""
    aug = AugmentConfig(random_mix=False, gain_db=0.0, channel_swap=False, drop_silent=False,
                        stem_dropout=0.9, stem_dropout_per_stem=[0.5, 0.0, 0.0, 0.0])
    ds = ExcerptDataset([coded], "train", STEMS, 500, 200, aug, seed=0)
    silent = np.array([[float(src[s].abs().max()) == 0.0 for s in range(4)] for _, src in (ds[i] for i in range(200))])
    assert 0.4 < silent[:, 0].mean() < 0.6 and not silent[:, 1:].any()
    with pytest.raises(ConfigError, match="stem_dropout_per_stem: .* one chance in"):
        check_train_config(load_config(None, ["data.augment.stem_dropout_per_stem=[0.5,0]"]))


def test_primary_extra_splits_draw_the_first_datasets_valid_tracks_only(coded, tmp_path):
    """A final fit on train+valid: the first dataset's valid track joins the draws; another
    dataset's valid tracks (out-of-domain checks) never do."""
    writer = CacheWriter(tmp_path / "other", coded.sample_rate, STEMS, source="test")
    writer.add_track("o_train", "train", {s: np.full((2, 3000), 0.5, np.float32) for s in STEMS})
    writer.add_track("o_valid", "valid", {s: np.full((2, 3000), 0.5, np.float32) for s in STEMS})
    writer.finalize()
    other = PreparedDataset(tmp_path / "other")
    plain = ExcerptDataset([coded, other], "train", STEMS, 1000, 400, NO_AUG, seed=1)
    final = ExcerptDataset([coded, other], "train", STEMS, 1000, 400, NO_AUG, seed=1,
                           primary_extra_splits=("valid",))
    assert (0, "t5") not in plain.items and (0, "t5") in final.items
    assert (1, "o_valid") not in final.items and (1, "o_train") in final.items
    drawn = {_decode(final[i][1])[0] for i in range(200)
             if final.items[final._draw_position(final._rng(i), 1000)[0]][0] == 0}
    assert 5 in drawn  # track t5, the valid one, is really read
