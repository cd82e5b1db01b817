"""Benchmark section: data preparation and loader throughput.

Generates a small synth corpus (``stemsplit prepare synth``), then times the training loader:
6-second stereo excerpts at 44.1 kHz with the default augmentations (cross-track remix,
per-stem gain, channel swap, silent-excerpt redraw), batches of 16, with 0, 1 and 2 worker
processes, through ``ExcerptDataset.loader`` and through a plain ``torch DataLoader``. The
time includes starting the workers; the cache files are in the page cache (as they are
after the first epoch). The machine's load average is printed with the figures, because
on a shared 2-core machine other processes change them a lot.

    .venv/bin/python scripts/bench_data.py          # prints the table
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stemsplit.config import AugmentConfig  # noqa: E402
from stemsplit.data.cache import PreparedDataset  # noqa: E402
from stemsplit.data.dataset import ExcerptDataset  # noqa: E402
from stemsplit.pipelines.prepare import PrepareOptions, prepare_synth  # noqa: E402

SR = 44100
EXCERPT_SECONDS = 6.0
BATCH = 16
EXCERPTS = 480  # per measurement
TRACKS, SECONDS = 8, 30.0


def _throughput(dataset: ExcerptDataset, workers: int, fast: bool) -> float:
    if fast:
        loader = dataset.loader(BATCH, num_workers=workers)
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=workers)
    started = time.perf_counter()
    count = 0
    for mixture, _sources in loader:
        count += mixture.shape[0]
    return count / (time.perf_counter() - started)


def _load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def run(report: dict) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="stemsplit-bench-data-") as tmp:
        out = Path(tmp) / "synth"
        started = time.perf_counter()
        prep = prepare_synth(out, TRACKS, SECONDS, PrepareOptions(out=out, sample_rate=SR), seed=0,
                             valid_fraction=0.0)
        prepare_s = time.perf_counter() - started
        ds = PreparedDataset(out)
        frames = int(EXCERPT_SECONDS * SR)
        dataset = ExcerptDataset([ds], "train", ds.stems, frames, EXCERPTS, AugmentConfig(), seed=0)
        dataset[0]  # open the memory maps once, as training does
        load_before = _load_average()
        fast = {w: _throughput(dataset, w, fast=True) for w in (0, 1, 2)}
        plain = {w: _throughput(dataset, w, fast=False) for w in (0, 1, 2)}
        load_after = _load_average()
    audio_s = TRACKS * SECONDS
    report["data"] = {
        "synth_generate_x_realtime": round(audio_s / prep.extra["generate_seconds"], 1),
        "prepare_seconds": round(prepare_s, 1),
        "corpus": f"{TRACKS} synth songs x {SECONDS:.0f} s, {SR} Hz stereo, int16 cache",
        "excerpt": f"{EXCERPT_SECONDS:.0f} s stereo, 4 stems, default augmentation, batch {BATCH}",
        "excerpts_per_s_dataset_loader": {f"{w}_workers": round(r, 1) for w, r in fast.items()},
        "excerpts_per_s_torch_dataloader": {f"{w}_workers": round(r, 1) for w, r in plain.items()},
        "load_average": [load_before, load_after],
    }
    print(f"data: synth generation {report['data']['synth_generate_x_realtime']}x real time; "
          f"prepare {TRACKS}x{SECONDS:.0f}s songs in {prepare_s:.1f} s")
    print(f"loader, {EXCERPT_SECONDS:.0f} s stereo excerpts x 4 stems, batch {BATCH} "
          f"(load average {load_before:.1f} -> {load_after:.1f})")
    print(f"  {'workers':>8} {'dataset.loader()':>18} {'DataLoader(dataset)':>20}  excerpts/s")
    for w in (0, 1, 2):
        print(f"  {w:>8} {fast[w]:>18.1f} {plain[w]:>20.1f}")


if __name__ == "__main__":
    run({})
