"""Shared fixtures. Tests under tests/blender/ need only bpy and numpy: they also run
under Python 3.13 with bpy 5.2.3 (Blender 5.2 LTS), where torch and mediapipe are
absent, so nothing there (this file included) may import them at module level."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / ".cache" / "photos"
sys.path.insert(0, str(ROOT))
from smplx_capture_addon.cpu_threads import spin_briefly  # noqa: E402  (from ROOT)

# bpy writes its configuration under the user's home unless told otherwise.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="smplx-capture-blender-"))
# The fits run here as in the worker and the command line (before anything loads torch).
spin_briefly()


@pytest.fixture(scope="session")
def photo_dir() -> Path:
    """Real photos fetched by `python3 build.py setup` (see PHOTOS in build.py)."""
    if not PHOTOS.is_dir():
        pytest.fail("Test photos are missing: run `python3 build.py setup` first.")
    return PHOTOS


@pytest.fixture(scope="session")
def synthetic_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the SMPL-X download, with synthetic 2019-layout files."""
    from smplx_capture_addon.devtools import synthetic_model

    folder = tmp_path_factory.mktemp("models")
    for index, gender in enumerate(("NEUTRAL", "MALE", "FEMALE")):
        synthetic_model.write_model(folder / "smplx" / f"SMPLX_{gender}.npz", seed=index)
    return folder
