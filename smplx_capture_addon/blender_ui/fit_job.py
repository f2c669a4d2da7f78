"""What the Fit buttons do, as plain functions the operators call and tests run: give a
fit request (a photo's or a video's) to the warm worker and follow the job, and turn a
finished job into a scene (or into a message, leaving the scene untouched).

One serving worker is kept from fit to fit (`runner.KeptWorker`): it is started when a
photo is picked (`prepare_worker`, which has it load the detector and the body model
before the click) or at the first fit, keeps torch, the detector and the body model
loaded for the next ones, and is replaced when it has stopped or the worker Python
changed; `close_worker` ends it (the add-on is disabled, Blender quits).

Each job writes into a folder of its own (JOB_FOLDER_PREFIX, Blender's process id, a
random part) in the system's temporary folder. The scene keeps nothing from it (the
result is kept in the .blend, the worker's pictures are packed into it), so the folder
goes once the job has ended (`remove_job_folder`); folders left by Blender sessions that
are gone (a crash) are removed when the next fit starts. A re-fit that keeps the artist's
edits (`refit_request`) writes its inputs there first: the rigs' pose as the fit to start
from, and the keypoints the handles show.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import suppress
from pathlib import Path

import bpy

from ..atomic_files import process_running
from ..blender_builders import edits, keypoint_handles, rig
from ..blender_builders import scene as builders
from ..blender_builders.animation import build_motion
from ..blender_builders.refit import replace_fit
from ..errors import CaptureError
from ..fit_request import EVERYONE, FitRequest, PersonChoice
from ..motion_format import frame_as_result, read_motion
from ..result_format import model_for_result, read_result, write_result
from ..video.request import VideoRequest
from ..worker import runner
from ..worker.runner import JobState, WorkerJob

JOB_FOLDER_PREFIX = "smplx-capture-job-"
_JOB_FOLDER = re.compile(rf"^{re.escape(JOB_FOLDER_PREFIX)}(\d+)-")
_KEPT_WORKER = runner.KeptWorker()
REFIT_START, REFIT_KEYPOINTS = "start.json", "corrected_keypoints.json"  # a re-fit's inputs, in its folder
PARTIAL_SUFFIX = "(partial)"  # ends the name of a video fit's collection built from a cancelled job


def new_job_folder() -> Path:
    """A new temporary folder for a job's files (`remove_job_folder` once it has ended)."""
    remove_stale_job_folders()
    return Path(tempfile.mkdtemp(prefix=f"{JOB_FOLDER_PREFIX}{os.getpid()}-"))


def start_fit(
    request: FitRequest | VideoRequest, worker_python: str | None = None, out_dir: Path | None = None
) -> tuple[WorkerJob, Path]:
    """Give `request` (a photo's or a video's) to the warm worker of `worker_python` (None: the Python running
    Blender), started if none serves; its files go to `out_dir` (a re-fit's, holding its
    inputs), else to a new job folder, for `remove_job_folder` once the job has ended."""
    out_dir = out_dir or new_job_folder()
    job = _KEPT_WORKER.start_job(worker_python, _worker_environment(worker_python), request, out_dir)
    return job, out_dir


def _worker_environment(worker_python: str | None) -> dict[str, str]:
    # A Python the user chose has the solver's packages itself; the extension's bundled
    # wheels are built for Blender's Python and would only get in its way.
    return runner.worker_environment([] if worker_python else [runner.extension_site_packages()])


def prepare_worker(request: FitRequest, worker_python: str | None = None) -> None:
    """Have the warm worker of `worker_python` (started if none serves) load what a fit of
    `request` needs, so that the Fit click finds the detector and the body model loaded."""
    _KEPT_WORKER.prepare(worker_python, _worker_environment(worker_python), request)


def close_worker() -> None:
    """End the warm worker now (the add-on is disabled, Blender quits), freeing its memory."""
    _KEPT_WORKER.close()


def remove_job_folder(out_dir: str | Path) -> None:
    """Delete a job's folder: once it has ended, built or not, nothing needs its files."""
    shutil.rmtree(out_dir, ignore_errors=True)


def remove_stale_job_folders() -> None:
    """Delete the job folders of Blender sessions that are no longer running."""
    with suppress(OSError), os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            match = _JOB_FOLDER.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False) and not process_running(int(match.group(1))):
                remove_job_folder(entry.path)


def finish_fit(
    state: JobState,
    request: FitRequest,
    replace: bpy.types.Collection | None = None,
    scene: bpy.types.Scene | None = None,
) -> builders.BuiltFit:
    """Build the scene of a finished job. Raises CaptureError (scene untouched) when the
    job failed or was cancelled. With `replace`, that fit's collection is swapped for the
    new one (same name; objects the artist added to it are kept). The pictures the
    worker made are packed into the .blend, so the job's folder can go."""
    if state.status == runner.CANCELLED:
        raise CaptureError("The fit was cancelled.")
    if state.status != runner.DONE or not state.result_path:
        raise CaptureError(state.error or "The fit failed.")
    result = read_result(state.result_path)
    data = model_for_result(result, request.model)
    name = replace.name if replace is not None else Path(request.photo).stem
    built = builders.build_fit(result, data, image_path=state.photo_path or request.photo, name=name,
                               scene=scene)  # fmt: skip
    if state.overlay_path and Path(state.overlay_path).is_file():
        try:
            builders.add_camera_background(built.camera, state.overlay_path)
        except RuntimeError:  # an unreadable drawing only loses the drawing, not the fit
            pass
    made_by_worker = {os.path.abspath(p) for p in (state.photo_path, state.overlay_path) if p}
    for background in built.camera.data.background_images:
        image = background.image
        if image.packed_file is None and os.path.abspath(bpy.path.abspath(image.filepath)) in made_by_worker:
            image.pack()
    if replace is not None:
        replace_fit(replace, built, scene or bpy.context.scene)
    return built


def finish_video_fit(
    state: JobState, request: VideoRequest, scene: bpy.types.Scene | None = None
) -> builders.BuiltFit:
    """Build the rig and Action of a finished video job (animation.build_motion: the scene's
    frame range and rate from the clip, the clip behind the rig). Raises CaptureError (scene
    untouched) when the job failed or was cancelled before a frame was fitted. A job
    cancelled later built the frames done: its collection's name ends in PARTIAL_SUFFIX,
    and the first warning says so."""
    if state.status == runner.CANCELLED:
        raise CaptureError("The video fit was cancelled before a frame was fitted: nothing was built.")
    if state.status != runner.DONE or not state.result_path:
        raise CaptureError(state.error or "The video fit failed.")
    motion = read_motion(state.result_path)
    data = model_for_result(frame_as_result(motion), request.fit.model)
    name = Path(request.fit.photo).stem
    if motion.partial:
        name = f"{name} {PARTIAL_SUFFIX}"
    return build_motion(motion, data, name=name, scene=scene)


def show_handles(fit: bpy.types.Collection) -> bpy.types.Collection:
    """The keypoints of the fit `fit` as handles over its photo (see keypoint_handles)."""
    result = builders.result_of(fit)
    objects = {(o.get(builders.PROP_ROLE), o.get(builders.PROP_PERSON)): o for o in fit.objects}
    camera = camera_of(fit)
    rigs = [objects.get(("armature", index)) for index in range(len(result.people))]
    if camera is None or None in rigs:
        raise CaptureError("This fit has lost its camera or a rig: fit the photo again to see its keypoints.")
    return keypoint_handles.show_handles(fit, result, camera, rigs)


def refit_request(
    fit: bpy.types.Collection, folder: Path, device: str = "auto", gmm: str | None = None
) -> FitRequest:
    """A re-fit of `fit` that keeps the artist's edits, its inputs written into `folder`:
    it starts from the rigs as they stand, holds the bones rotated since the fit or
    pinned, and fits the keypoints the handles show (else the fit's own), with the fit's
    body model and camera, on `device`, with the GMM pose prior `gmm` when given (VPoser
    cannot start from a pose)."""
    result = builders.result_of(fit)
    if not all(person.keypoints_px for person in result.people):
        raise CaptureError(
            "This fit keeps no keypoints (it was made by an earlier version): fit the photo again, then "
            "re-fit that."
        )
    start, held = edits.refit_start(fit, result)
    camera = camera_of(fit)
    if camera is None:
        raise CaptureError("This fit has lost its camera: fit the photo again to re-fit it.")
    points = keypoint_handles.corrected_keypoints(fit, result, camera)
    keypoints = keypoint_handles.write_keypoint_file(folder / REFIT_KEYPOINTS, points, result)
    photo = result.image.path if result.image.path and Path(result.image.path).is_file() else None
    return FitRequest(
        photo=photo,
        keypoints=str(keypoints),
        model=result.model.path,
        gender=result.model.gender,
        device=device,
        person=PersonChoice(EVERYONE),
        gmm=gmm,
        start=str(write_result(start, folder / REFIT_START)),
        fixed_joints=held,
    )


def fit_of(obj: bpy.types.Object | None) -> bpy.types.Collection | None:
    """The fit collection `obj` belongs to, if any."""
    if obj is None:
        return None
    for collection in obj.users_collection:
        if collection.get(builders.PROP_FIT):
            return collection
    return None


def camera_of(fit: bpy.types.Collection) -> bpy.types.Object | None:
    """The camera of the fit `fit`, unless the artist deleted it."""
    return next((o for o in fit.objects if o.get(builders.PROP_ROLE) == "camera"), None)


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
    data = model_for_result(builders.result_of(collection))
    rig.fit_bones_to_shape(armature, mesh, data.j_regressor)
