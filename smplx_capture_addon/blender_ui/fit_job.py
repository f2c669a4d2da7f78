"""What the Fit button does, as plain functions the operators call and tests run:
start a worker on a fit request and follow the job, and turn a finished job into a
scene (or into a message, leaving the scene untouched)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

from ..blender_builders import rig
from ..blender_builders import scene as builders
from ..blender_builders.refit import replace_fit
from ..errors import CaptureError
from ..fit_request import FitRequest
from ..result_format import model_for_result, read_result
from ..worker import runner
from ..worker.runner import JobState, WorkerJob


def worker_arguments(request: FitRequest, out_dir: str | Path) -> list[str]:
    """The worker's arguments after its `--stdin-control`: the request's, and the job folder."""
    return [*request.to_arguments(), "--out", str(out_dir)]


def start_fit(request: FitRequest, worker_python: str | None = None) -> tuple[WorkerJob, Path]:
    """Start a worker for `request` with `worker_python` (None: the Python running
    Blender); its files go to a new temporary folder."""
    out_dir = Path(tempfile.mkdtemp(prefix="smplx-capture-job-"))
    # A Python the user chose has the solver's packages itself; the extension's bundled
    # wheels are built for Blender's Python and would only get in its way.
    extra = [] if worker_python else [runner.extension_site_packages()]
    command = runner.worker_command(worker_python, worker_arguments(request, out_dir))
    return WorkerJob(command, runner.worker_environment(extra)), out_dir


def finish_fit(
    state: JobState,
    request: FitRequest,
    replace: bpy.types.Collection | None = None,
    scene: bpy.types.Scene | None = None,
) -> builders.BuiltFit:
    """Build the scene of a finished job. Raises CaptureError (scene untouched) when the
    job failed or was cancelled. With `replace`, that fit's collection is swapped for the
    new one (same name; objects the artist added to it are kept)."""
    if state.status == runner.CANCELLED:
        raise CaptureError("The fit was cancelled.")
    if state.status != runner.DONE or not state.result_path:
        raise CaptureError(state.error or "The fit failed.")
    result = read_result(state.result_path)
    data = model_for_result(result, request.model)
    name = replace.name if replace is not None else Path(request.photo).stem
    built = builders.build_fit(result, data, image_path=state.photo_path or request.photo,
                               result_path=state.result_path, name=name, scene=scene)  # fmt: skip
    if state.overlay_path and Path(state.overlay_path).is_file():
        try:
            builders.add_camera_background(built.camera, state.overlay_path)
        except RuntimeError:  # an unreadable drawing only loses the drawing, not the fit
            pass
    if replace is not None:
        replace_fit(replace, built, scene or bpy.context.scene)
    return built


def fit_of(obj: bpy.types.Object | None) -> bpy.types.Collection | None:
    """The fit collection `obj` belongs to, if any."""
    if obj is None:
        return None
    for collection in obj.users_collection:
        if collection.get(builders.PROP_FIT):
            return collection
    return None


def person_objects(obj: bpy.types.Object | None) -> tuple[bpy.types.Object | None, bpy.types.Object | None]:
    """(armature, mesh) of the fitted person `obj` belongs to (either may be None)."""
    collection = fit_of(obj)
    if collection is None:
        return None, None
    index = obj.get(builders.PROP_PERSON, 0)
    found = {"armature": None, "mesh": None}
    for candidate in collection.objects:
        role = candidate.get(builders.PROP_ROLE)
        if role in found and candidate.get(builders.PROP_PERSON) == index:
            found[role] = candidate
    return found["armature"], found["mesh"]


def reset_pose(armature: bpy.types.Object) -> None:
    """Every bone back to its rest orientation (the body stands where it was fitted)."""
    for bone in armature.pose.bones:
        bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        bone.rotation_euler = (0.0, 0.0, 0.0)
        bone.location = (0.0, 0.0, 0.0)
        bone.scale = (1.0, 1.0, 1.0)


def fit_bones_to_shape(armature: bpy.types.Object, mesh: bpy.types.Object) -> None:
    """Bones to the joints of the shape the sliders made (the fit's model regresses them)."""
    collection = fit_of(mesh)
    if collection is None or builders.PROP_RESULT not in collection:
        raise CaptureError("This body does not come from a fit result: its joints cannot be recomputed.")
    data = model_for_result(read_result(collection[builders.PROP_RESULT]))
    rig.fit_bones_to_shape(armature, mesh, data.j_regressor)
