"""A band-split checkpoint with fewer LSTM units per direction, cut from a trained one: the starting
weights of a fine-tune that tests the "smaller default" speed lever (docs/benchmarks.md).

usage: prune_band_split.py SRC.ckpt DST.ckpt --hidden H

Every AxisLSTM keeps, per direction, the H units whose weights matter most (the L2 norm of each
unit's four gate rows in W and R, times its column in the projection that follows): their gate
rows, their recurrent columns and their projection columns. Everything else is copied. The result
is a normal float32 stemsplit checkpoint whose config says model.hidden_size=H, for train.init_from.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parent.parent))

from stemsplit.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from stemsplit.config import apply_overrides, config_from_dict, config_to_dict  # noqa: E402
from stemsplit.models import build_model  # noqa: E402


def kept_units(sd: dict, prefix: str, suffix: str, old: int, new: int, direction: int) -> torch.Tensor:
    """The ``new`` most important of ``old`` units of one LSTM direction, in their original order."""
    w_ih, w_hh = sd[f"{prefix}.rnn.weight_ih_l0{suffix}"], sd[f"{prefix}.rnn.weight_hh_l0{suffix}"]
    gates = torch.cat([w_ih, w_hh], dim=1).reshape(4, old, -1).pow(2).sum(dim=(0, 2)).sqrt()  # (old,)
    out = sd[f"{prefix}.proj.weight"][:, direction * old:(direction + 1) * old].norm(dim=0)  # (old,)
    return torch.sort(torch.topk(gates * out, new).indices).values


def prune(src: Path, dst: Path, hidden: int) -> None:
    loaded = load_checkpoint(src)
    sd = {k: v.float() for k, v in loaded.model.state_dict().items()}
    old = loaded.model.params.hidden_size
    cfg = config_from_dict(apply_overrides(config_to_dict(loaded.config), [f"model.hidden_size={hidden}"]))
    model = build_model(cfg)
    new_sd = dict(sd)
    prefixes = sorted({k.rsplit(".rnn.", 1)[0] for k in sd if ".rnn.weight_ih_l0" in k})
    for prefix in prefixes:
        proj_cols = []
        for direction, suffix in enumerate(("", "_reverse")):
            keep = kept_units(sd, prefix, suffix, old, hidden, direction)
            rows = torch.cat([g * old + keep for g in range(4)])
            new_sd[f"{prefix}.rnn.weight_ih_l0{suffix}"] = sd[f"{prefix}.rnn.weight_ih_l0{suffix}"][rows]
            new_sd[f"{prefix}.rnn.weight_hh_l0{suffix}"] = sd[f"{prefix}.rnn.weight_hh_l0{suffix}"][rows][:, keep]
            for b in ("bias_ih_l0", "bias_hh_l0"):
                new_sd[f"{prefix}.rnn.{b}{suffix}"] = sd[f"{prefix}.rnn.{b}{suffix}"][rows]
            proj_cols.append(direction * old + keep)
        new_sd[f"{prefix}.proj.weight"] = sd[f"{prefix}.proj.weight"][:, torch.cat(proj_cols)]
    model.load_state_dict(new_sd)
    save_checkpoint(dst, model, cfg, meta={"pruned_from": str(src), "hidden_size": hidden})
    print(f"wrote {dst}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters "
          f"({len(prefixes)} LSTMs, {old} -> {hidden} units per direction)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--hidden", type=int, required=True)
    args = ap.parse_args()
    prune(args.src, args.dst, args.hidden)
    return 0


if __name__ == "__main__":
    sys.exit(main())
