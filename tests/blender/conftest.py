"""Fixtures for the Blender-side tests (bpy + numpy only: they also run on Python 3.13
with bpy 5.2.3, where torch is absent)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from smplx_capture_addon.blender_ui import fit_job
from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.body_model.model_file import BodyModelData
from smplx_capture_addon.devtools import synthetic_model


@pytest.fixture(autouse=True)
def empty_scene():
    """Each test starts from an empty scene, and leaves no warm worker running."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield
    fit_job.close_worker()


def write_small_model(path: Path, seed: int = 0, **overrides) -> Path:
    """A synthetic SMPL-X-layout file with a small mesh (fast to build in Blender)."""
    arrays = synthetic_model.make_model_arrays(num_vertices=1500, num_faces=3000, seed=seed)
    arrays["vertex_keypoint_ids"] = np.arange(21)
    # Small triangles, each between vertices around one joint (vertex i belongs to joint
    # i % 55), rather than random ones across the body: renders stay fast.
    first = np.arange(1500 - 110)
    arrays["f"] = np.stack([first, first + 55, first + 110], axis=1).astype(np.uint32)
    for key in ("lmk_faces_idx", "dynamic_lmk_faces_idx"):  # drawn among 3000 faces: kept on these
        arrays[key] = arrays[key] % len(first)
    for key, value in overrides.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> BodyModelData:
    return model_file.load_model(write_small_model(tmp_path_factory.mktemp("small") / "SMPLX_NEUTRAL.npz"))


@pytest.fixture(scope="session")
def small_model_without_correctives(tmp_path_factory) -> BodyModelData:
    path = tmp_path_factory.mktemp("plain") / "SMPLX_NEUTRAL.npz"
    return model_file.load_model(write_small_model(path, seed=3, posedirs=None))
