"""`bench`: the synthetic benchmark with ground truth (see devtools.bench)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "fit synthetic people with known bodies (DeepMimic poses) and print errors, speed and memory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=8, help="number of people (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=2.0, metavar="PX",
                        help="keypoint noise in pixels at a 1000-pixel image height (default 2)")  # fmt: skip
    parser.add_argument("--drop", type=float, default=0.1, help="fraction of keypoints dropped (default 0.1)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch (default 2)")
    parser.add_argument("--json", action="store_true", help="end with one line holding all figures as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..solver.pipeline import resolve_device
    from .bench import run_bench

    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    figures = run_bench(args.n, args.seed, args.noise, args.drop, resolve_device(args.device),
                        log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    rows = {f"{key}.{name}" if isinstance(value, dict) else key: inner
            for key, value in figures.items()
            for name, inner in (value.items() if isinstance(value, dict) else [(key, value)])}  # fmt: skip
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    if args.json:
        print(json.dumps(figures))
    return 0
