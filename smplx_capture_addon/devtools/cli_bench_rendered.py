"""`bench-rendered`: the rendered benchmark with ground truth (see devtools.rendered)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .rendered import DEFAULT_COUNT, KINDS, TRAINING_SEED_START

HELP = ("render people with known bodies (whole, cut by the frame, occluded, in groups, seated, crouched, "
        "lying), detect and fit them, and print the errors per case kind")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=DEFAULT_COUNT,
                        help=f"cases of each kind (default {DEFAULT_COUNT})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0,
                        help=f"the benchmark's seed, below {TRAINING_SEED_START} (the training range)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), metavar="KIND",
                        help=f"case kinds to run (default all: {', '.join(KINDS)})")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int,
                        help="CPU threads for PyTorch (default: PyTorch's own, as `fit` and the worker)")
    parser.add_argument("--overlays", type=Path, metavar="DIR",
                        help="also write each case's fit and keypoints drawn over its render into DIR")
    parser.add_argument("--truth-readings", metavar="READINGS",
                        help="how much error the detector's readings cause: fit each case from its "
                             "detections as read and with READINGS (2d, depth or 2d,depth) replaced by the "
                             "truth's, and print both")  # fmt: skip
    parser.add_argument("--warm", action="store_true",
                        help="keep the detector and the body model loaded from case to case, as Blender's "
                             "worker keeps them (default: each case opens the detector)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="end with one line holding all figures as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..atomic_files import check_output_folder
    from ..solver.pipeline import resolve_device
    from .rendered.bench import run_rendered_bench

    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    readings = _truth_readings(args.truth_readings)
    if readings is None:
        return 2
    if args.overlays is not None:
        check_output_folder(args.overlays)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kinds = tuple(dict.fromkeys(args.kinds))

    def bench(truth_readings: frozenset[str] | None) -> dict:
        return run_rendered_bench(args.n, args.seed, kinds, resolve_device(args.device), args.overlays,
                                  log=lambda line: print(line, file=sys.stderr, flush=True),
                                  truth_readings=truth_readings, warm=args.warm)  # fmt: skip

    if not readings:
        figures = bench(None)
        print_table(figures)
    else:
        figures = {"as_read": bench(frozenset()), "with_truth": bench(readings)}
        for title, run_figures in zip(("as read", f"with the truth's {', '.join(sorted(readings))}"),
                                      figures.values(), strict=True):  # fmt: skip
            print(f"== {title}")
            print_table(run_figures)
    if args.json:
        print(json.dumps(figures))
    return 0


def _truth_readings(text: str | None) -> frozenset[str] | None:
    """The readings `--truth-readings` names (empty when not given); None, with the
    error printed, when it names an unknown one."""
    from .rendered.oracle import TRUTH_READINGS

    readings = frozenset(part.strip() for part in (text or "").split(",") if part.strip())
    unknown = sorted(readings - set(TRUTH_READINGS))
    if unknown:
        print(f"error: unknown reading(s) {', '.join(unknown)} for --truth-readings: choose from "
              f"{', '.join(TRUTH_READINGS)}", file=sys.stderr)  # fmt: skip
        return None
    return readings


def print_table(figures: dict) -> None:
    """The run's settings, then one row per figure with a column per kind and one for all."""
    for key, value in figures.items():
        if key not in ("kinds", "all"):
            print(f"{key}: {_shown(value)}")
    columns = {name: _flat(column) for name, column in {**figures["kinds"], "all": figures["all"]}.items()}
    rows = list(columns["all"])
    width = max(len(name) for name in rows)
    print(f"{'':<{width}}  " + " ".join(f"{name[:14]:>14}" for name in columns))
    for name in rows:
        cells = (f"{_shown(column.get(name)):>14}" for column in columns.values())
        print(f"{name:<{width}}  " + " ".join(cells))


def _flat(figures: dict) -> dict:
    """Figures with each nested one (seconds by stage) as rows of its own: "outer.inner"."""
    flat = {}
    for name, value in figures.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{inner}": figure for inner, figure in value.items()})
        else:
            flat[name] = value
    return flat


def _shown(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
