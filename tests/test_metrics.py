"""Metrics on generated signals: global SDR vs a NumPy reference, BSS Eval sanity, aggregation."""
import json
import math

import numpy as np
import pytest

from stemsplit.metrics import (
    BSS_METRICS,
    aggregate,
    bss_eval_frames,
    frame_median,
    global_sdr,
    global_sdr_stems,
    museval_track_json,
    num_frames,
)

SR = 8000  # museval's cost is the filter solve, so few stems and channels keep these fast


def mdx_reference_sdr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """The MDX challenge's scoring code, verbatim in spirit: (stems, time, channels) arrays."""
    delta = 1e-7
    num = np.sum(np.square(references), axis=(1, 2)) + delta
    den = np.sum(np.square(references - estimates), axis=(1, 2)) + delta
    return 10 * np.log10(num / den)


def noisy_pair(seconds=2.0, stems=2, channels=1, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((stems, channels, int(seconds * SR))).astype(np.float32)
    return ref, (ref + noise * rng.standard_normal(ref.shape)).astype(np.float32)


def test_global_sdr_agrees_with_numpy_reference():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((4, 2, 30000)).astype(np.float32)
    est = (ref * rng.uniform(0.2, 1.5, (4, 1, 1)) + rng.standard_normal(ref.shape) * 0.5).astype(np.float32)
    ours = global_sdr_stems(ref, est)
    expected = mdx_reference_sdr(ref.transpose(0, 2, 1).astype(np.float64), est.transpose(0, 2, 1).astype(np.float64))
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-10)
    assert isinstance(global_sdr(ref[0], est[0]), float)


def test_global_sdr_known_values():
    ref, _ = noisy_pair()
    assert global_sdr(ref, 0.9 * ref) == pytest.approx(20.0, abs=1e-4)  # error = 0.1 s -> 20 dB
    assert global_sdr(ref, np.zeros_like(ref)) == pytest.approx(0.0, abs=1e-9)
    assert global_sdr(ref, ref) > 100  # perfect: only the epsilon limits it
    silent = np.zeros_like(ref)
    assert global_sdr(silent, silent) == 0.0  # silent reference, silent estimate: finite
    with pytest.raises(ValueError, match="shapes differ"):
        global_sdr(ref, ref[..., :-1])


def test_bss_eval_perfect_estimate_scores_very_high_and_noise_lower():
    ref, est = noisy_pair(seconds=2.5)
    perfect = bss_eval_frames(ref, ref, SR)
    noisy = bss_eval_frames(ref, est, SR)
    assert set(perfect) == set(BSS_METRICS)
    assert perfect["SDR"].shape == (2, num_frames(ref.shape[-1], SR, SR)) == (2, 2)
    assert np.nanmin(perfect["SDR"]) > 60
    # independent white noise at -10.5 dB relative: SDR close to 10.5 dB
    assert np.nanmedian(noisy["SDR"]) == pytest.approx(10.46, abs=0.5)
    assert np.all(noisy["SDR"] < perfect["SDR"])


def test_bss_eval_silent_stem_gives_nan_frames_instead_of_failing():
    ref, est = noisy_pair()
    ref[1] = 0.0  # museval itself raises on a silent reference
    frames = bss_eval_frames(ref, est, SR)
    assert frames["SDR"].shape == (2, 2) and np.isnan(frames["SDR"]).all()
    assert math.isnan(frame_median(frames["SDR"][0]))


def test_museval_json_is_readable_by_sigsep_tools(tmp_path):
    import museval
    import simplejson

    ref, est = noisy_pair(seconds=3.0)
    frames = bss_eval_frames(ref, est, SR)
    per_stem = {stem: {m: frames[m][i].tolist() for m in BSS_METRICS} for i, stem in enumerate(["vocals", "other"])}
    per_stem["other"]["SIR"][1] = None  # a NaN frame survives as NaN
    text = museval_track_json("Artist - Song", per_stem)
    (tmp_path / "method" / "test").mkdir(parents=True)
    (tmp_path / "method" / "test" / "Artist - Song.json").write_text(text)
    store = museval.MethodStore()
    store.add_eval_dir(tmp_path / "method")
    agg = store.agg_frames_tracks_scores()
    assert agg[("method", "vocals", "SDR")] == pytest.approx(np.median(frames["SDR"][0]), abs=1e-4)
    df = museval.json2df(simplejson.loads(text, allow_nan=True), "Artist - Song")  # as museval reads it
    assert sorted(df["target"].unique()) == ["other", "vocals"] and len(df) == 2 * 3 * 4


def test_aggregation_on_a_hand_built_table():
    nan = float("nan")
    rows = [  # (model, track, stem, metric, value)
        ("a", "t1", "vocals", "SDR", 1.0), ("a", "t2", "vocals", "SDR", 5.0), ("a", "t3", "vocals", "SDR", 3.0),
        ("a", "t1", "bass", "SDR", 2.0), ("a", "t2", "bass", "SDR", 4.0), ("a", "t3", "bass", "SDR", nan),
        ("a", "t1", "vocals", "gsdr", -1.0), ("a", "t2", "vocals", "gsdr", 7.0),
        ("a", "t1", "bass", "gsdr", 0.5), ("a", "t2", "bass", "gsdr", 0.5),
        ("b", "t1", "vocals", "SDR", 10.0), ("b", "t2", "vocals", "SDR", 20.0),
        ("b", "t1", "bass", "SDR", nan), ("b", "t2", "bass", "SDR", nan),
    ]
    out = aggregate(rows, stems=["vocals", "bass"])
    assert out[("a", "vocals", "SDR")] == 3.0  # median of 1, 5, 3
    assert out[("a", "bass", "SDR")] == 3.0  # the NaN track is left out: median of 2, 4
    assert out[("a", "mean", "SDR")] == 3.0
    assert out[("a", "vocals", "gsdr")] == 3.0 and out[("a", "mean", "gsdr")] == 1.75
    assert out[("b", "vocals", "SDR")] == 15.0
    assert math.isnan(out[("b", "bass", "SDR")]) and math.isnan(out[("b", "mean", "SDR")])


def test_frame_median_ignores_nan_frames():
    assert frame_median([1.0, None, 3.0, float("nan"), 2.0]) == 2.0
    assert math.isnan(frame_median([None, float("nan")]))
    assert json.dumps(frame_median([4.0])) == "4.0"


def test_bss_eval_frames_equals_museval_evaluate():
    import museval

    ref, est = noisy_pair(seconds=2.0, seed=4)
    ours = bss_eval_frames(ref, est, SR)
    sdr, isr, sir, sar = museval.evaluate(ref.transpose(0, 2, 1), est.transpose(0, 2, 1), win=SR, hop=SR)
    for name, theirs in (("SDR", sdr), ("ISR", isr), ("SIR", sir), ("SAR", sar)):
        np.testing.assert_allclose(ours[name], theirs, rtol=1e-12, atol=1e-9)
