"""Blender-side tests that also need the solver's packages (torch, mediapipe): Python
3.11 only. Importing bpy first puts Blender's script modules (addon_utils, ...) on the
path."""

import bpy  # noqa: F401
import pytest

from smplx_capture_addon.blender_ui import fit_job


@pytest.fixture(autouse=True)
def no_warm_worker_left():
    """Each test starts its own warm worker and leaves none running."""
    fit_job.close_worker()
    yield
    fit_job.close_worker()
