"""Blender-side tests that also need the solver's packages (torch, mediapipe): Python
3.11 only. Importing bpy first puts Blender's script modules (addon_utils, ...) on the
path."""

import bpy
import pytest

from smplx_capture_addon.blender_ui import fit_job

ADDON = "smplx_capture_addon"


@pytest.fixture(autouse=True)
def no_warm_worker_left():
    """Each test starts its own warm worker and leaves none running."""
    fit_job.close_worker()
    yield
    fit_job.close_worker()


@pytest.fixture
def addon():
    """The add-on enabled in an empty scene, disabled afterwards."""
    import addon_utils  # on the path once bpy is imported

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    yield
    addon_utils.disable(ADDON, default_set=True)
