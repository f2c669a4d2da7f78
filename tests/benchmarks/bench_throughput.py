"""People per second of the whole fit solved as one batch, on the CPU and on the GPU,
against a CPU batch measured in the same run.

    .venv/bin/python tests/benchmarks/bench_throughput.py [--device cpu|cuda] [--batches N ...]
        [--baseline N] [--budget SECONDS] [--seed S]

A benchmark, not a test: it prints figures and ratios and asserts nothing. The people
are those of `bench` (DeepMimic poses on the benchmark's synthetic SMPL-X-layout model,
2 px noise, 10% of the keypoints dropped); a batch of n fits the first n of them in one
`fit_keypoints` call. The baseline fits the first `--baseline` people as one batch on
the CPU; each batch on `--device` then reports its people per second, that over the
baseline's, its mean and median PA vertex-to-vertex error, its peak memory and its
slowest stages. On a GPU the baseline's people are fitted there too, and the two fits
compared person by person (the same fits up to float rounding, which may move a few
people into another minimum). Batches whose time, extrapolated from the last one, would
pass `--budget` seconds are skipped.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.devtools import bench, motions, synthetic_cases
from smplx_capture_addon.solver.fit_result import BatchFit
from smplx_capture_addon.solver.keypoint_fit import fit_keypoints


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--baseline", type=int, default=8, help="people in the CPU baseline batch")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the batches on --device")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    args = arguments()
    sys.stdout.reconfigure(line_buffering=True)  # each batch's line as soon as it is measured
    if not motions.available_clips():
        sys.exit(f"No motion clips in {motions.MOTION_CACHE}: run `python3 build.py setup` first.")
    largest = max([*args.batches, args.baseline])
    with tempfile.TemporaryDirectory() as folder:
        path = synthetic_cases.write_bench_model(Path(folder) / "SMPLX_NEUTRAL.npz", seed=args.seed)
        data = load_model(path)
    reference = BodyModel(data, face_contour=True)  # CPU: the baseline and the error measure
    orient, pose = motions.sample_poses(largest, np.random.default_rng(args.seed))
    cases = synthetic_cases.make_cases(reference, orient, pose, seed=args.seed + 1)

    def fit(model: BodyModel, count: int) -> tuple[BatchFit, float]:
        device = model.full_template.device
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = fit_keypoints(model, cases.keypoints[:count].to(device), cases.focal[:count].to(device),
                               cases.image_size[:count].to(device))  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        return result, time.perf_counter() - started

    def pa_v2v(result: BatchFit) -> torch.Tensor:
        count = len(result.converged)
        fitted = {k: v.cpu() for k, v in result.params.items()}
        truth = {k: v[:count] for k, v in cases.params.items()}
        return bench.errors_mm(reference, fitted, truth)["pa_v2v"]

    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "none"
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, GPU {gpu}")
    fit(reference, 1)  # one-time set-up of the process, outside every figure
    baseline, baseline_seconds = fit(reference, args.baseline)
    baseline_rate = args.baseline / baseline_seconds
    baseline_error = pa_v2v(baseline)
    print(f"baseline: {args.baseline} people as one batch on the CPU in {baseline_seconds:.1f} s, "
          f"{baseline_rate:.2f} people/s, PA-V2V mean {baseline_error.mean():.1f} mm")  # fmt: skip

    model = BodyModel(data, face_contour=True).to(args.device)
    if args.device == "cuda":
        fit(model, 1)
        same, _ = fit(model, args.baseline)
        error = pa_v2v(same)
        difference = (error - baseline_error).abs()
        print(f"the baseline's people on the GPU: PA-V2V mean {error.mean():.1f} mm; |GPU - CPU| per "
              f"person: median {difference.median():.2f} mm, largest {difference.max():.1f} mm, "
              f"{int((difference > 1.0).sum())} of {args.baseline} over 1 mm")  # fmt: skip
    print(f"{'people':>6} {'seconds':>8} {'people/s':>9} {'x baseline':>10} {'PA-V2V mm':>10} "
          f"{'median':>7} {'peak MB':>8}  slowest stages (s)")  # fmt: skip
    spent, last = 0.0, None
    for count in sorted(args.batches):
        if last is not None and spent + last[1] * count / last[0] > args.budget:
            print(f"{count:>6} skipped: about {last[1] * count / last[0]:.0f} s would pass the budget")
            continue
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            result, seconds = fit(model, count)
        except torch.OutOfMemoryError:
            print(f"{count:>6} out of memory")
            break
        spent += seconds
        last = (count, seconds)
        error = pa_v2v(result)
        stages = sorted(result.stage_seconds, key=lambda stage: -stage[1])[:4]
        print(f"{count:>6} {seconds:>8.1f} {count / seconds:>9.2f} {count / seconds / baseline_rate:>9.1f}x "
              f"{error.mean():>10.1f} {error.median():>7.1f} {peak_memory_mb(args.device):>8.0f}  "
              + ", ".join(f"{name} {took:.1f}" for name, took in stages))  # fmt: skip


if __name__ == "__main__":
    main()
