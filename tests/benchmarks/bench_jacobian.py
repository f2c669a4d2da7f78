"""Levenberg-Marquardt's Jacobian of the last stage's residuals: the solver's (closed-form
keypoint derivatives, reverse mode for the rest) against forward-mode differentiation of
the residuals (torch.func.jacfwd under vmap, one pass per unknown), same inputs, same run.

    .venv/bin/python tests/benchmarks/bench_jacobian.py [--device cpu|cuda] [--repeats N]

A benchmark, not a test: it prints figures and ratios and asserts nothing (the tests
check that the two agree). The model is the benchmark's synthetic SMPL-X-layout file
with the face contour and pose correctives; 116 unknowns per row.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_body_model import arguments, time_step

from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.devtools import bench, synthetic_cases
from smplx_capture_addon.solver import collision, priors
from smplx_capture_addon.solver.inputs import NORMALISED_HEIGHT
from smplx_capture_addon.solver.objective import StageObjective, relative_depths
from smplx_capture_addon.solver.options import FitOptions
from smplx_capture_addon.solver.packing import Packing
from smplx_capture_addon.solver.schedule import default_stages


def main() -> None:
    args = arguments(__doc__, [1, 13, 64])
    with tempfile.TemporaryDirectory() as tmp:
        model = BodyModel(load_model(synthetic_cases.write_bench_model(Path(tmp) / "SMPLX_NEUTRAL.npz")),
                          face_contour=True)  # fmt: skip
    orient, pose = bench._collision_pose()
    cases = synthetic_cases.make_cases(model, orient, pose, seed=3, noise_px=2.0, drop=0.1)
    model.to(args.device)
    packing = Packing(model)
    limits = tuple(t.to(args.device) for t in priors.joint_limit_table())
    size = collision.body_size(model(vertices=False).joints[0].detach().cpu())
    stage = default_stages()[-1]
    objective = StageObjective(model, packing, stage, FitOptions(), limits, size)
    truth = packing.pack({k: v.to(args.device) for k, v in cases.params.items() if k in packing.names})
    keypoints = cases.keypoints.to(args.device)
    image_size = cases.image_size.to(args.device)
    # The world depth term's rows: the truth's own depths, every point given.
    depths = relative_depths(model(vertices=False, **packing.unpack(truth)).keypoints).detach()
    person = (keypoints[..., :2], keypoints[..., 2], cases.focal.to(args.device), image_size / 2,
              NORMALISED_HEIGHT / image_size[:, 1], depths, torch.ones_like(depths))  # fmt: skip

    def one(x, *row):
        return objective.residuals(x[None], *(r[None] for r in row))[0]

    forward_mode = torch.func.vmap(torch.func.jacfwd(one))
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'rows':>5} {'forward mode ms':>16} {'ours ms':>8} {'ratio':>6}")
    for batch in args.batches:
        generator = torch.Generator().manual_seed(batch)
        x = truth.expand(batch, -1) + 0.05 * torch.randn(batch, truth.shape[1], generator=generator).to(truth)
        rows = tuple(t.expand(batch, *t.shape[1:]) for t in person)
        free = torch.arange(x.shape[1], device=x.device)
        theirs = time_step(lambda: forward_mode(x, *rows), args.device, args.repeats)  # noqa: B023
        ours = time_step(lambda: objective.jacobian(x, free, *rows), args.device, args.repeats)  # noqa: B023
        print(f"{batch:>5} {theirs:>16.1f} {ours:>8.1f} {theirs / ours:>5.1f}x")


if __name__ == "__main__":
    main()
