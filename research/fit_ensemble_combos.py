#!/usr/bin/env python3
"""Score every subset of candidate checkpoints as an ensemble, to choose what to ship.

    research/fit_ensemble_combos.py DATA SPLIT a.ckpt b.ckpt [c.ckpt ...]

Each checkpoint separates the split once; then, for every subset of two or more, per-stem
weights are fitted on the grid of `pipelines/ensemble.py` (step 0.05 for pairs, 0.1 beyond,
maximising the mean gSDR over tracks), and the median gSDR per stem is printed for the fitted
and for equal weights. Fitting and scoring on the same split flatters the fitted column;
the equal-weight column is the check.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stemsplit.data.cache import PreparedDataset  # noqa: E402
from stemsplit.data.dataset import iter_full_tracks  # noqa: E402
from stemsplit.metrics import global_sdr  # noqa: E402
from stemsplit.pipelines.ensemble import simplex_grid  # noqa: E402
from stemsplit.resolver import load_torch  # noqa: E402
from stemsplit.separation.torch_runner import torch_engine  # noqa: E402
from stemsplit.settings import EngineSettings  # noqa: E402


def main() -> None:
    data, split, paths = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    loaded = [load_torch(p) for p in paths]
    engines = []
    for lm in loaded:
        lm.model.eval()
        engines.append(torch_engine(lm, EngineSettings(wiener_iterations=0, device="cpu")))
    refs, ests = [], []  # per track: (S, C, L) and (M, S, C, L)
    for _name, mix, src in iter_full_tracks(PreparedDataset(data), split, loaded[0].stems):
        ests.append(np.stack([e.separate(mix) for e in engines]))
        refs.append(src)

    def scores(w: np.ndarray, s: int) -> list[float]:
        return [global_sdr(r[s], np.tensordot(w, e[:, s], axes=1)) for r, e in zip(refs, ests)]

    names = [Path(p).stem for p in paths]
    for i, n in enumerate(names):
        print(n, [round(float(np.median(scores(np.eye(len(paths))[i], s))), 2) for s in range(4)])
    for k in range(2, len(paths) + 1):
        for combo in itertools.combinations(range(len(paths)), k):
            fitted, weights = [], []
            for s in range(4):
                best, best_w = -np.inf, None
                for g in simplex_grid(k, 0.05 if k == 2 else 0.1):
                    w = np.zeros(len(paths))
                    w[list(combo)] = g
                    m = float(np.mean(scores(w, s)))
                    if m > best:
                        best, best_w = m, w
                fitted.append(round(float(np.median(scores(best_w, s))), 2))
                weights.append([round(float(x), 2) for x in best_w[list(combo)]])
            eq = np.zeros(len(paths))
            eq[list(combo)] = 1 / k
            equal = [round(float(np.median(scores(eq, s))), 2) for s in range(4)]
            print([names[i] for i in combo], "fitted", fitted, round(float(np.mean(fitted)), 3),
                  "| equal", equal, round(float(np.mean(equal)), 3), "| weights per stem", weights, flush=True)


if __name__ == "__main__":
    main()
