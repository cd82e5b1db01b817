#!/usr/bin/env python3
"""Write an untrained, random-weight checkpoint from a config (for smoke tests and benchmarks).

usage: scripts/init_checkpoint.py CONFIG OUT.ckpt [--set section.key=value ...] [--seed N]
"""
from __future__ import annotations

import argparse
import sys

import torch

from stemsplit.checkpoint import save_checkpoint
from stemsplit.config import ConfigError, load_config
from stemsplit.models import build_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    model = build_model(cfg)
    save_checkpoint(args.out, model, cfg, meta={"trained_on": None, "recipe": args.config,
                                                "note": "random weights (untrained)"})
    print(f"wrote {args.out} ({cfg.model.name}, stems: {', '.join(cfg.stems)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
