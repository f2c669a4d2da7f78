"""Blender-side tests that also need the solver's packages (torch, mediapipe): Python
3.11 only. Importing bpy first puts Blender's script modules (addon_utils, ...) on the
path."""

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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


def _run_job_operator(operator: Callable[[], set[str]], label: str):
    """Run a job operator (Fit, Fit a Video) through its blocking path -> the finished
    job's state: it must finish, without an error, at full progress, its job folder gone."""
    job_folders = f"{fit_job.JOB_FOLDER_PREFIX}{os.getpid()}-*"
    before = sorted(Path(tempfile.gettempdir()).glob(job_folders))
    start = time.perf_counter()
    assert operator() == {"FINISHED"}
    print(f"{label}: {time.perf_counter() - start:.1f} s")
    job = bpy.context.window_manager.smplx_capture_job
    assert not job.running and job.error == "" and job.progress == 1.0
    assert sorted(Path(tempfile.gettempdir()).glob(job_folders)) == before  # the job's folder is gone
    return job


@pytest.fixture
def run_job_operator():
    """_run_job_operator, for the operator tests."""
    return _run_job_operator
