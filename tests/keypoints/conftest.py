"""Fixtures of the keypoint tests: the real photos of build.py's PHOTOS and one
MediaPipe detector for the whole session (its models come from `build.py setup`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smplx_capture_addon.keypoints.detect import MODEL_DIR, Detector, detect
from smplx_capture_addon.keypoints.images import load_image
from smplx_capture_addon.keypoints.people import Detections


@pytest.fixture(scope="session")
def detector():
    if not MODEL_DIR.joinpath("pose_landmarker_full.task").is_file():
        pytest.fail("MediaPipe models are missing: run `python3 build.py setup` first.")
    with Detector() as shared:
        yield shared


@pytest.fixture(scope="session")
def detections_of(detector, photo_dir: Path):
    """detections_of(photo, **options) -> Detections, computed once per argument set."""
    cache: dict[tuple, Detections] = {}

    def run(name: str, **options) -> Detections:
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = detect(load_image(photo_dir / name), detector, **options)
        return cache[key]

    return run
