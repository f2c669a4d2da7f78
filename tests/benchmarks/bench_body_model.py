"""Forward + backward time of the body model, ours against `smplx.SMPLX`, same file, same run.

    .venv/bin/python tests/benchmarks/bench_body_model.py [--device cpu|cuda] [--repeats N]

A benchmark, not a test: it prints figures and ratios and asserts nothing. The model is
a synthetic file with the official SMPL-X sizes (10,475 vertices, 2020 layout: 300 shape
+ 100 expression directions, of which 10 + 10 are used, 12 hand PCA components).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.devtools import synthetic_model


def time_step(step, device: str, repeats: int) -> float:
    """Median milliseconds of `step()` after two warm-up calls."""
    times = []
    for index in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def arguments(description: str, batches: list[int]) -> argparse.Namespace:
    """The benchmarks' command line: --device, --repeats, --batches."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="+", default=batches)
    return parser.parse_args()


def main() -> None:
    import smplx  # here: the other benchmarks share this file's helpers without smplx

    args = arguments(__doc__, [1, 16, 64])
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_model.write_model(Path(tmp) / "SMPLX_NEUTRAL.npz", layout="2020")
        ours = BodyModel(model_file.load_model(path)).to(args.device)
        reference = smplx.SMPLX(str(path), ext="npz", num_pca_comps=12).to(args.device)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'batch':>5} {'smplx ms':>9} {'ours ms':>8} {'ratio':>6} {'keypoints ms':>13} {'ratio':>6}")
    for batch in args.batches:
        params = {k: (torch.randn_like(v) * 0.2).requires_grad_() for k, v in ours.zeros(batch).items()}

        def ours_full(params=params):
            ours(**params).vertices.square().sum().backward()

        def ours_keypoints(params=params):
            ours(vertices=False, **params).keypoints.square().sum().backward()

        def reference_full(params=params):
            reference(**params).vertices.square().sum().backward()

        ref_ms = time_step(reference_full, args.device, args.repeats)
        full_ms = time_step(ours_full, args.device, args.repeats)
        kp_ms = time_step(ours_keypoints, args.device, args.repeats)
        print(
            f"{batch:>5} {ref_ms:>9.2f} {full_ms:>8.2f} {ref_ms / full_ms:>5.1f}x"
            f" {kp_ms:>13.2f} {ref_ms / kp_ms:>5.0f}x"
        )


if __name__ == "__main__":
    main()
