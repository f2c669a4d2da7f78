"""Fixtures of the solver tests: the benchmark model (a synthetic SMPL-X-layout file with
keypoints on the parts they are named after) and synthetic people with ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.devtools import synthetic_cases


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Small batches run fastest on one thread; and one thread count for every fit, as a
    # different count changes float rounding (and so a non-convex fit's end point).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def bench_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_cases.write_bench_model(tmp_path_factory.mktemp("bench") / "SMPLX_NEUTRAL.npz")


@pytest.fixture(scope="session")
def bench_model(bench_model_path: Path) -> BodyModel:
    return BodyModel(load_model(bench_model_path), face_contour=True)


@pytest.fixture(scope="session")
def clean_cases(bench_model: BodyModel) -> synthetic_cases.Cases:
    """Three people, mild random poses, no noise, every keypoint seen."""
    orient, pose = synthetic_cases.random_body_poses(3, seed=3, scale=0.15)
    return synthetic_cases.make_cases(bench_model, orient, pose, seed=4, noise_px=0.0, drop=0.0)
