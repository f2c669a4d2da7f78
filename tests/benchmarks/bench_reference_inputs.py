"""Inputs of the reference SMPLify-X's kind, fitted as a user would fit them: OpenPose JSON
(BODY_25, hands, face-70) of a 1000 x 1000 image, f = 5000 px, 2 px noise, with a full-size
(10,475-vertex) SMPL-X-layout model, through fit_photo (keypoint file and photo in, result
out) in one warm process, as the serving worker runs it (its threads' short spin too).
Prints seconds per fit (median, 95th percentile, largest; the first fit of the process on
its own), seconds per stage and the vertex errors against the truth. Asserts nothing.

    .venv/bin/python tests/benchmarks/bench_reference_inputs.py [--n 8] [--seed 0] [--json]
"""

# ruff: noqa: E402  (torch loads after the worker's thread settings are made)
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from smplx_capture_addon.cpu_threads import spin_briefly

spin_briefly()  # before torch loads, as the worker does

import cv2
import numpy as np
import torch

from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.body_model.names import KEYPOINT_NAMES_WITH_CONTOUR
from smplx_capture_addon.devtools import motions, synthetic_cases
from smplx_capture_addon.devtools.bench import errors_mm
from smplx_capture_addon.devtools.rendered.metrics import fitted_params
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.keypoints.formats import write_openpose
from smplx_capture_addon.keypoints.layouts import LAYOUTS
from smplx_capture_addon.keypoints.people import Detections, Person
from smplx_capture_addon.solver.pipeline import WarmModels, fit_photo

FOCAL_PX, SIDE_PX = 5000.0, 1000  # the reference's camera and image
OPENPOSE_SETS = ("openpose_body_25", "hand_21_left", "hand_21_right", "openpose_face_70")


def openpose_person(named: np.ndarray) -> Person:
    """One person's OpenPose sets from the body model's keypoints (K, 3)."""
    index = {name: k for k, name in enumerate(KEYPOINT_NAMES_WITH_CONTOUR)}
    sets = {}
    for set_name in OPENPOSE_SETS:
        layout = LAYOUTS[set_name]
        points = np.zeros((layout.size, 3))
        for point, name, _ in layout.mapping:
            points[point] = named[index[name]]
        sets[set_name] = points
    return Person((0.0, 0.0, float(SIDE_PX), float(SIDE_PX)), sets)


def result_layout(model: BodyModel, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`model`'s parameters as a result file holds them: full hand poses, mean included."""
    names = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose",
             "right_hand_pose")  # fmt: skip
    pose = model.full_pose(*(params[name] for name in names)).flatten(1)
    return {**params, "left_hand_pose": pose[:, 75:120], "right_hand_pose": pose[:, 120:165]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="people, one file each (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one line of all figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = Path(tempfile.mkdtemp(prefix="reference_inputs_"))
    model_path = synthetic_cases.write_bench_model(folder / "SMPLX_NEUTRAL.npz", seed=args.seed)
    data = load_model(model_path)
    model = BodyModel(data, face_contour=True)
    orient, pose = motions.sample_poses(args.n, np.random.default_rng(args.seed))
    cases = synthetic_cases.make_cases(model, orient, pose, seed=args.seed + 1, drop=0.0,
                                       fixed_camera=(FOCAL_PX, SIDE_PX))  # fmt: skip
    photo = folder / "photo.png"
    cv2.imwrite(str(photo), np.full((SIDE_PX, SIDE_PX, 3), 128, np.uint8))
    warm = WarmModels()
    seconds, stages, fitted = [], {}, []
    for person in range(args.n):
        keypoints = folder / f"person_{person}_keypoints.json"
        people = [openpose_person(cases.keypoints[person].numpy())]
        write_openpose(keypoints, Detections(str(photo), None, people))
        request = FitRequest(photo=str(photo), keypoints=str(keypoints), model=str(model_path), device="cpu",
                             focal_px=FOCAL_PX)  # fmt: skip
        started = time.perf_counter()
        result = fit_photo(request, warm=warm)
        seconds.append(time.perf_counter() - started)
        for stage in result.stages:
            stages[stage.name] = stages.get(stage.name, 0.0) + stage.seconds / args.n
        fitted.append(fitted_params(result.people[0]))
        print(f"person {person}: {seconds[-1]:.2f} s", file=sys.stderr, flush=True)
    full_hands = BodyModel(data, face_contour=True, hand_pca=None, flat_hand_mean=True)
    fits = {name: torch.tensor([f[name] for f in fitted], dtype=torch.float32) for name in fitted[0]}
    errors = errors_mm(full_hands, fits, result_layout(model, cases.params))
    warm_seconds = seconds[1:] or seconds
    figures = {
        "people": args.n, "focal_px": FOCAL_PX, "image_px": SIDE_PX, "threads": torch.get_num_threads(),
        "first_fit_seconds": seconds[0],
        "seconds_per_fit_median": float(np.median(warm_seconds)),
        "seconds_per_fit_p95": float(np.percentile(warm_seconds, 95)),
        "seconds_per_fit_max": max(warm_seconds),
        "stage_seconds_per_fit": stages,
        **{f"{name}_mm": float(value.mean()) for name, value in errors.items()},
    }  # fmt: skip
    for key, value in figures.items():
        shown = {k: round(v, 3) for k, v in value.items()} if isinstance(value, dict) else value
        print(f"{key:<26} {shown:.3f}" if isinstance(shown, float) else f"{key:<26} {shown}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
