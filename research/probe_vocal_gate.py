#!/usr/bin/env python3
"""Probe: does a learned vocal-activity gate remove phantom vocals, and what does it cost?

A small CNN learns, from the mixture's log-mel spectrogram alone, which frames hold vocals.
It trains on the training tracks of one or more prepared datasets, remixed on the fly (each
stem from a random track half the time, random gains, the vocals silent in half the
excerpts). A frame is "vocal" when the vocals carry more than ``--label-db`` of its energy.
The mixture alone is its input on purpose: a shipped separator has memorised its own training
tracks (on them its phantom vocals are about 6 dB lower than on valid), so features taken from
its estimates would teach the detector the wrong level.

Then each valid track is separated twice by ``--model``: as it is, and remixed without its
vocals (``evaluation/absent_stem.py``'s measurement). The gate scales the vocals estimate
frame by frame, ``g = clip((p - lo) / (hi - lo), 0, 1)``, and moves the rest into "other", so
the stems still add up to what the model gave. For each (lo, hi) the script prints the median
phantom vocals and the median global SDR of vocals and other on valid, per track with -v.

usage:
  research/probe_vocal_gate.py --data data/musdb18-7 --extra data/multitracks --seed 1 --steps 3000 \\
      [--model band_split_wide] [--json eval/vocal_gate_s1.json] [-v]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stemsplit.atomic import write_text_atomic  # noqa: E402
from stemsplit.data.cache import PreparedDataset  # noqa: E402
from stemsplit.data.dataset import iter_full_tracks  # noqa: E402
from stemsplit.evaluation.absent_stem import energy_ratio_db, median_energy_db  # noqa: E402
from stemsplit.metrics import global_sdr  # noqa: E402
from stemsplit.resolver import load_torch  # noqa: E402
from stemsplit.separation.torch_runner import torch_engine  # noqa: E402
from stemsplit.settings import EngineSettings  # noqa: E402

STEMS = ["vocals", "drums", "bass", "other"]
SR, N_FFT, HOP, N_MELS = 44100, 2048, 1024, 64
EXCERPT = 3 * SR // HOP * HOP
GATES = [(0.05, 0.2), (0.1, 0.3), (0.2, 0.5), (0.3, 0.6), (0.5, 0.7)]


class VocalActivity(nn.Module):
    """Log-mel ``(batch, 1, mels, frames)`` -> vocal logits ``(batch, frames)``.

    Three 2-D conv blocks (each halves the mel axis), then dilated 1-D convs over time: about
    ±0.8 s of context per frame, 158k parameters."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d((2, 1)))

        self.spectral = nn.Sequential(block(1, 16), block(16, 32), block(32, 32))
        layers: list[nn.Module] = []
        channels = 32 * N_MELS // 8
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv1d(channels, 64, 5, dilation=dilation, padding=2 * dilation), nn.BatchNorm1d(64),
                       nn.ReLU()]
            channels = 64
        self.temporal = nn.Sequential(*layers, nn.Conv1d(64, 1, 1))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spectral(logmel).flatten(1, 2)).squeeze(1)


class Features:
    """Mono audio ``(batch, time)`` -> log-mel ``(batch, 1, mels, time // HOP)``, 30 Hz-11 kHz."""

    def __init__(self) -> None:
        self.fbank = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 30.0, 11025.0, N_MELS, SR)
        self.window = torch.hann_window(N_FFT)

    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(audio, dtype=torch.float32)
        spec = torch.stft(x, N_FFT, HOP, window=self.window, return_complex=True)
        mel = (spec.abs() ** 2).transpose(1, 2) @ self.fbank
        return ((torch.log10(mel + 1e-8) + 3) / 3).transpose(1, 2).unsqueeze(1)[..., : x.shape[-1] // HOP]


def frame_energy(audio: np.ndarray) -> np.ndarray:
    """``(..., time)`` -> energy per HOP-sample frame ``(..., time // HOP)``."""
    n = audio.shape[-1] // HOP
    return (np.asarray(audio[..., : n * HOP], np.float64) ** 2).reshape(*audio.shape[:-1], n, HOP).sum(-1)


def vocal_frames(vocals: np.ndarray, mixture: np.ndarray, label_db: float) -> np.ndarray:
    ev, em = frame_energy(vocals), frame_energy(mixture)
    return (ev > em * 10 ** (label_db / 10)) & (ev > 1e-6 * HOP)


def training_stems(roots: list[Path]) -> list[np.ndarray]:
    """Every training track of the datasets as mono stems ``(4, time)``."""
    return [sources.mean(1) for root in roots
            for _, _, sources in iter_full_tracks(PreparedDataset(root), "train", STEMS)]


def remixed_batch(tracks: list[np.ndarray], rng: np.random.Generator, size: int,
                  label_db: float) -> tuple[np.ndarray, np.ndarray]:
    """``size`` remixed 3-s excerpts ``(size, time)`` and their vocal-frame labels ``(size, frames)``."""
    mixes, labels = [], []
    for _ in range(size):
        home = tracks[rng.integers(len(tracks))]
        same_track = rng.random() < 0.5
        stems = []
        for s in range(len(STEMS)):
            track = home if same_track else tracks[rng.integers(len(tracks))]
            start = rng.integers(0, max(1, track.shape[1] - EXCERPT))
            piece = np.pad(track[s, start:start + EXCERPT], (0, max(0, EXCERPT - (track.shape[1] - start))))
            gain = 0.0 if s == 0 and rng.random() < 0.5 else 10 ** (rng.uniform(-6, 6) / 20)
            stems.append(piece[:EXCERPT] * gain)
        stems = np.stack(stems) * 10 ** (rng.uniform(-10, 6) / 20)
        mixes.append(stems.sum(0))
        labels.append(vocal_frames(stems[0], stems.sum(0), label_db))
    return np.stack(mixes).astype(np.float32), np.stack(labels).astype(np.float32)


def train_detector(tracks: list[np.ndarray], steps: int, seed: int, label_db: float,
                   features: Features) -> VocalActivity:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = VocalActivity()
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        mixes, labels = remixed_batch(tracks, rng, 32, label_db)
        loss = loss_fn(net(features(mixes)), torch.from_numpy(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps:
            print(f"detector step {step}/{steps}: loss {loss.item():.3f}, {time.perf_counter() - t0:.0f} s", flush=True)
    return net.eval()


def gate_curve(prob: np.ndarray, length: int, lo: float, hi: float) -> np.ndarray:
    """Frame probabilities -> a per-sample gain in [0, 1], linear between frame centres."""
    gain = np.clip((prob - lo) / (hi - lo), 0.0, 1.0)
    return np.interp(np.arange(length), np.arange(len(gain)) * HOP + HOP / 2, gain).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared MUSDB-style dataset: train and valid")
    ap.add_argument("--extra", type=Path, action="append", default=[], help="more prepared datasets to train on")
    ap.add_argument("--model", default="band_split_wide")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--label-db", type=float, default=-20.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))

    features = Features()
    detector = train_detector(training_stems([args.data, *args.extra]), args.steps, args.seed, args.label_db,
                              features)
    loaded = load_torch(args.model)
    loaded.model.eval()
    separator = torch_engine(loaded, EngineSettings(device="cpu"))
    vi, oi = loaded.stems.index("vocals"), loaded.stems.index("other")

    def probability(audio: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(detector(features(audio.mean(0, keepdims=True))))[0].numpy()

    rows = {gate: [] for gate in [None, *GATES]}
    hits, rejections = [], []
    for name, mixture, sources in iter_full_tracks(PreparedDataset(args.data), "valid", loaded.stems):
        remix = np.delete(sources, vi, axis=0).sum(0)
        est_mix, est_remix = separator.separate(mixture), separator.separate(remix)
        p_mix, p_remix = probability(mixture), probability(remix)
        truth = vocal_frames(sources[vi].mean(0), mixture.mean(0), args.label_db)[: len(p_mix)]
        hits += list(p_mix[truth] > 0.5)
        rejections += list(p_mix[~truth] < 0.5) + list(p_remix < 0.5)
        for gate in rows:
            g_mix, g_remix = ((np.ones(mixture.shape[-1], np.float32),) * 2 if gate is None else
                              (gate_curve(p_mix, mixture.shape[-1], *gate), gate_curve(p_remix, remix.shape[-1], *gate)))
            vocals = est_mix[vi] * g_mix
            other = est_mix[oi] + est_mix[vi] * (1 - g_mix)
            rows[gate].append((name, energy_ratio_db(est_remix[vi] * g_remix, remix),
                               global_sdr(sources[vi], vocals), global_sdr(sources[oi], other)))

    print(f"\nframes with vocals kept (p > 0.5): {np.mean(hits):.3f}; frames without vocals "
          f"(incl. the remixes) rejected: {np.mean(rejections):.3f}")
    print(f"{'gate (lo-hi)':14s} {'phantom vocals':>15s} {'vocals gSDR':>12s} {'other gSDR':>11s}  (medians over valid)")
    summary = []
    for gate, per_track in rows.items():
        ph = median_energy_db(r[1] for r in per_track)
        voc, oth = (float(np.median([r[i] for r in per_track])) for i in (2, 3))
        label = "none" if gate is None else f"{gate[0]:.2f}-{gate[1]:.2f}"
        print(f"{label:14s} {ph:12.1f} dB {voc:12.2f} {oth:11.2f}")
        if args.verbose:
            for name, *vals in per_track:
                print(f"    {name[:34]:34s} {vals[0]:7.1f} {vals[1]:6.2f} {vals[2]:6.2f}")
        summary.append({"gate": label, "phantom_vocals_db": ph, "vocals_gsdr": voc, "other_gsdr": oth,
                        "per_track": [dict(zip(("track", "phantom_db", "vocals", "other"), r)) for r in per_track]})
    if args.json:  # complete or absent, as every file stemsplit writes
        result = {"model": args.model, "seed": args.seed, "steps": args.steps, "frames_kept": float(np.mean(hits)),
                  "frames_rejected": float(np.mean(rejections)), "gates": summary}
        write_text_atomic(args.json, json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
