"""Thin operators: each reads the context, calls a plain function of `fit_job`, reports.

The Fit and Fit Video operators (what they share is `_FollowsJob`) have two paths.
`invoke` (a click in Blender) gives the job to the warm worker and follows it from a
timer in a modal handler, so Blender stays responsive. `execute` (scripts, and the bpy
module, which has no event loop to run timers) blocks until the job ends. Both end in
`fit_job.finish_fit` or `finish_video_fit`, which build only after success (for a video,
also a cancel after some frames: the frames done, marked partial), and whatever ends a
job (its end, an error, Blender cancelling the operator) leaves no timer, no job running
in a worker and no active job behind: Fit is available again.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..blender_builders import scene as builders
from ..errors import CaptureError
from ..export import exporter, presets
from ..fit_request import BOX, EVERYONE, FIRST, NUMBER, FitRequest, PersonChoice
from ..video.request import VideoRequest
from ..worker.runner import CANCELLED, JobState, WorkerJob
from . import fit_job
from .preferences import preferences


@dataclass
class _Running:
    job: WorkerJob
    request: FitRequest | VideoRequest
    replace: str | None  # name of the fit collection to replace
    out_dir: Path  # the job's folder, removed when the job ends


_ACTIVE: dict[str, _Running] = {}  # "job" -> the fit in progress (one at a time)
POLL_INTERVAL_S = 0.1


def cancel_running() -> None:
    """Stop a fit in progress (the add-on is being disabled: nothing will follow it)."""
    running = _ACTIVE.pop("job", None)
    if running is not None:
        running.job.close()
        fit_job.remove_job_folder(running.out_dir)


_PERSON_KINDS = {"LARGEST": FIRST, "NUMBER": NUMBER, "BOX": BOX, "ALL": EVERYONE}  # panel -> request


def request_from_context(context: bpy.types.Context) -> FitRequest:
    """The FitRequest that the panel's settings and the preferences describe."""
    settings = context.scene.smplx_capture
    if not settings.image:
        raise CaptureError("Pick an image first.")
    kind = _PERSON_KINDS[settings.person]
    person = PersonChoice(
        kind,
        number=settings.person_number if kind == NUMBER else None,
        box=tuple(settings.box) if kind == BOX else None,
    )
    return FitRequest(
        photo=bpy.path.abspath(settings.image),
        model=chosen_model(context),
        gender=settings.gender,
        device=settings.device,
        focal_px=settings.focal_px or None,
        person=person,
        overlay=settings.show_keypoints,
        vposer=preference_path(context, "vposer"),
        gmm=preference_path(context, "gmm"),
    )


def chosen_model(context: bpy.types.Context) -> str | None:
    """The body model the panel chose: None for the open default body, else the SMPL-X
    folder of the preferences."""
    if context.scene.smplx_capture.model != "SMPLX":
        return None
    model = preference_path(context, "smplx_folder")
    if model is None:
        raise CaptureError("Set the folder of your SMPL-X files in the add-on's preferences first.")
    return model


def video_request_from_context(context: bpy.types.Context) -> VideoRequest:
    """The VideoRequest that the Fit a Video panel's settings describe (the body model,
    gender and device as Fit a Photo has them)."""
    settings = context.scene.smplx_capture
    if not settings.video:
        raise CaptureError("Pick a video first.")
    fit = FitRequest(
        photo=bpy.path.abspath(settings.video),
        model=chosen_model(context),
        gender=settings.gender,
        device=settings.device,
        person=PersonChoice(NUMBER, number=settings.video_person),
    )
    end = settings.video_end if settings.video_end >= 0 else None
    return VideoRequest(fit, settings.video_start, end, settings.video_step, ground=settings.video_ground)


def preference_path(context: bpy.types.Context, name: str) -> str | None:
    """The absolute path the preference `name` holds; None when it is empty (or the
    add-on is not registered as one)."""
    prefs = preferences(context)
    value = getattr(prefs, name) if prefs is not None else ""
    return bpy.path.abspath(value) if value else None


def prepare_fit(context: bpy.types.Context, video: bool = False) -> None:
    """Have the warm worker load now what the Fit a Photo (or, with `video`, the Fit a
    Video) panel's fit will need (torch, the detector, the body model), while the artist
    sets up the fit: the click then waits only for the fit. Nothing while the settings
    make no request yet (the click says why)."""
    try:
        request = video_request_from_context(context).fit if video else request_from_context(context)
    except CaptureError:
        return
    fit_job.prepare_worker(request, preference_path(context, "worker_python"))


def show_state(window_manager: bpy.types.WindowManager, state: JobState) -> None:
    status = window_manager.smplx_capture_job
    status.running = not state.finished
    status.progress = state.fraction
    status.status = state.status_text()
    status.error = state.error or ""


def _redraw(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class _FollowsJob:
    """What the Fit and Fit a Video operators share: a job given to the warm worker and
    followed (blocking in `execute`, from a timer in `invoke`/`modal`), the scene built
    only from a finished job, and everything cleaned up however the job ends. A subclass
    says what it asks for (`_request`), what it replaces (`_replacing`) and what it
    builds (`_build`)."""

    kind = "photo"  # which panel shows the job's progress

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return "job" not in _ACTIVE

    def _replacing(self, context: bpy.types.Context) -> bpy.types.Collection | None:
        return None

    def _request(
        self, context: bpy.types.Context, target: bpy.types.Collection | None, out_dir: Path
    ) -> FitRequest | VideoRequest:
        raise NotImplementedError

    def _build(self, context: bpy.types.Context, running: _Running, state: JobState) -> builders.BuiltFit:
        raise NotImplementedError

    def _start(self, context: bpy.types.Context) -> _Running | None:
        status = context.window_manager.smplx_capture_job
        status.error, status.kind = "", self.kind
        target = self._replacing(context)
        out_dir = fit_job.new_job_folder()
        try:
            request = self._request(context, target, out_dir)
            job, out_dir = fit_job.start_fit(request, preference_path(context, "worker_python"), out_dir)
        except CaptureError as error:
            fit_job.remove_job_folder(out_dir)
            self._fail(context, str(error))
            return None
        if job.state.notice:
            self.report({"WARNING"}, job.state.notice)
        return _Running(job, request, target.name if target is not None else None, out_dir)

    def execute(self, context: bpy.types.Context) -> set[str]:
        running = self._start(context)
        if running is None:
            return {"CANCELLED"}
        try:
            state = running.job.wait(lambda s: show_state(context.window_manager, s), POLL_INTERVAL_S)
            return self._finish(context, running, state)
        finally:
            self._end(context, running)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        running = self._start(context)
        if running is None:
            return {"CANCELLED"}
        self._running, self._timer = running, None
        _ACTIVE["job"] = running
        try:
            show_state(context.window_manager, running.job.state)
            self._timer = context.window_manager.event_timer_add(POLL_INTERVAL_S, window=context.window)
            context.window_manager.modal_handler_add(self)
        except BaseException:
            self._end(context, running)
            raise
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        running = self._running
        ended = True  # unless the job is seen still running: whatever happens below, clean up
        try:
            if _ACTIVE.get("job") is not running:  # the add-on was disabled meanwhile (the job ended there)
                return {"CANCELLED"}
            state = running.job.poll()
            show_state(context.window_manager, state)
            _redraw(context)
            ended = state.finished
            return self._finish(context, running, state) if ended else {"PASS_THROUGH"}
        except Exception as error:  # a bug: a message in the panel, the traceback for a report
            traceback.print_exc()
            return self._fail(context, f"The fit stopped on an internal error ({type(error).__name__}: "
                                       f"{error}); the system console has the details.")  # fmt: skip
        finally:
            if ended:
                self._end(context, running)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator itself (a file is loaded, Blender quits)."""
        self._end(context, self._running)

    def _end(self, context: bpy.types.Context, running: _Running) -> None:
        """However the job ended: its worker gone, its folder gone, no active job, Fit
        available, no timer."""
        if _ACTIVE.get("job") is running:
            del _ACTIVE["job"]
        running.job.close()
        fit_job.remove_job_folder(running.out_dir)
        context.window_manager.smplx_capture_job.running = False
        timer, self._timer = getattr(self, "_timer", None), None
        if timer is not None:
            context.window_manager.event_timer_remove(timer)

    def _finish(self, context: bpy.types.Context, running: _Running, state: JobState) -> set[str]:
        if state.status == CANCELLED:
            show_state(context.window_manager, state)
            self.report({"INFO"}, "SMPL-X Capture: fit cancelled, nothing changed")
            return {"CANCELLED"}
        if context.mode != "OBJECT" and context.active_object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")  # building needs object mode (bones are made in edit mode)
        try:
            built = self._build(context, running, state)
        except CaptureError as error:
            return self._fail(context, str(error))
        show_state(context.window_manager, state)
        context.window_manager.smplx_capture_job.status = f"Built '{built.collection.name}'."
        for warning in built.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"SMPL-X Capture: built '{built.collection.name}'")
        return {"FINISHED"}

    def _fail(self, context: bpy.types.Context, message: str) -> set[str]:
        status = context.window_manager.smplx_capture_job
        status.running, status.error, status.status = False, message, "Failed."
        self.report({"ERROR"}, message)
        return {"CANCELLED"}


class SMPLX_CAPTURE_OT_fit(_FollowsJob, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Detect the person in the image and fit the body to it, in a separate process"""

    bl_idname = "smplx_capture.fit"
    bl_label = "Fit"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012

    replace: BoolProperty(
        name="Replace the active fit",
        description="Replace the fit the active object belongs to, keeping what you added to it",
        default=False,
        options={"SKIP_SAVE"},
    )
    keep_edits: BoolProperty(
        name="Keep my edits",
        description="Re-fit the active fit from its rig's current pose, holding the bones you rotated or "
        "pinned, to the keypoints its handles show",
        default=False,
        options={"SKIP_SAVE"},
    )

    def _replacing(self, context: bpy.types.Context) -> bpy.types.Collection | None:
        return fit_job.fit_of(context.active_object) if self.replace or self.keep_edits else None

    def _request(
        self, context: bpy.types.Context, target: bpy.types.Collection | None, out_dir: Path
    ) -> FitRequest:
        if not self.keep_edits:
            return request_from_context(context)
        if target is None:
            raise CaptureError("Select a fit (its rig, body or camera) to re-fit.")
        return fit_job.refit_request(target, out_dir, context.scene.smplx_capture.device,
                                     preference_path(context, "gmm"))  # fmt: skip

    def _build(self, context: bpy.types.Context, running: _Running, state: JobState) -> builders.BuiltFit:
        replace = bpy.data.collections.get(running.replace) if running.replace else None
        return fit_job.finish_fit(state, running.request, replace, context.scene)


class SMPLX_CAPTURE_OT_fit_video(_FollowsJob, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Fit the body to a person through a video, frame by frame in a separate process, and build one rig
    with an Action over the clip"""

    bl_idname = "smplx_capture.fit_video"
    bl_label = "Fit Video"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012
    kind = "video"

    def _request(
        self, context: bpy.types.Context, target: bpy.types.Collection | None, out_dir: Path
    ) -> VideoRequest:
        return video_request_from_context(context)

    def _build(self, context: bpy.types.Context, running: _Running, state: JobState) -> builders.BuiltFit:
        return fit_job.finish_video_fit(state, running.request, context.scene)


class SMPLX_CAPTURE_OT_fit_person(bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Fit this person of the photo in place of the active fit"""

    bl_idname = "smplx_capture.fit_person"
    bl_label = "Fit Person"
    bl_options = {"REGISTER"}  # noqa: RUF012 (the fit it runs is the undo step)

    number: IntProperty(name="Person", description="The person's number in the photo", min=1, default=1)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return "job" not in _ACTIVE and fit_job.fit_of(context.active_object) is not None

    def _choose(self, context: bpy.types.Context) -> None:
        """The panel's person choice becomes this number, so the fit and a later Re-fit use it."""
        settings = context.scene.smplx_capture
        settings.person, settings.person_number = "NUMBER", self.number

    def execute(self, context: bpy.types.Context) -> set[str]:
        self._choose(context)
        return bpy.ops.smplx_capture.fit("EXEC_DEFAULT", replace=True)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self._choose(context)
        return bpy.ops.smplx_capture.fit("INVOKE_DEFAULT", replace=True)


class SMPLX_CAPTURE_OT_cancel(bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Stop the running fit (nothing is built; a video fit builds the frames done, marked partial)"""

    bl_idname = "smplx_capture.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return "job" in _ACTIVE

    def execute(self, context: bpy.types.Context) -> set[str]:
        _ACTIVE["job"].job.cancel()
        return {"FINISHED"}


class SMPLX_CAPTURE_OT_reset_pose(bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Put every bone of the active fit back in its rest orientation"""

    bl_idname = "smplx_capture.reset_pose"
    bl_label = "Reset Pose"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return fit_job.person_objects(context.active_object)[0] is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        fit_job.reset_pose(fit_job.person_objects(context.active_object)[0])
        return {"FINISHED"}


class SMPLX_CAPTURE_OT_fit_bones(bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Move the bones to the joints of the body's current shape (after moving the shape sliders)"""

    bl_idname = "smplx_capture.fit_bones"
    bl_label = "Fit Bones to Shape"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        armature, mesh = fit_job.person_objects(context.active_object)
        return armature is not None and mesh is not None and context.mode == "OBJECT"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            fit_job.fit_bones_to_shape(*fit_job.person_objects(context.active_object))
        except CaptureError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}


class SMPLX_CAPTURE_OT_look_through(bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Look through the camera of the active fit, over its photo"""

    bl_idname = "smplx_capture.look_through"
    bl_label = "Look Through Fit Camera"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return fit_job.fit_of(context.active_object) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        camera = fit_job.camera_of(fit_job.fit_of(context.active_object))
        if camera is None:
            self.report({"ERROR"}, "This fit has no camera any more.")
            return {"CANCELLED"}
        builders.set_scene_camera(context.scene, camera)
        if context.space_data is not None and context.space_data.type == "VIEW_3D":
            context.space_data.region_3d.view_perspective = "CAMERA"
        return {"FINISHED"}


class SMPLX_CAPTURE_OT_export(bpy.types.Operator, ExportHelper):  # noqa: N801 (Blender's naming)
    """Export the selected fit's rig and body (and camera) to FBX or binary glTF for animation"""

    bl_idname = "smplx_capture.export"
    bl_label = "Export SMPL-X Rig"
    bl_options = {"REGISTER"}  # noqa: RUF012 (the scene is left as it was: nothing to undo)

    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx;*.glb", options={"HIDDEN"})
    file_format: EnumProperty(
        name="Format",
        items=[
            ("FBX", "FBX (.fbx)", "For game engines and animation tools"),
            ("GLB", "glTF Binary (.glb)", "For web viewers (always metres, Y up)"),
        ],
        default="FBX",
    )
    preset: EnumProperty(
        name="Preset",
        description="Units, axes and bone orientation of the target (FBX only)",
        items=[(p.name, p.label, p.description) for p in presets.PRESETS.values()],
        default=presets.DEFAULT_PRESET,
    )
    bake_correctives: BoolProperty(
        name="Bake Pose Correctives",
        description="Mix the pose correctives into the mesh for the current pose; "
        "off keeps them as shape keys at their current values",
        default=True,
    )
    include_camera: BoolProperty(name="Include Camera", description="Also export the photo's camera")

    def check(self, context: bpy.types.Context) -> bool:
        self.filename_ext = exporter.EXTENSIONS[self.file_format]  # the extension follows the chosen format
        return super().check(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        path, extension = Path(self.filepath), exporter.EXTENSIONS[self.file_format]
        known = exporter.format_of(path) is not None
        path = path.with_suffix(extension) if known else path.with_name(path.name + extension)
        try:
            rigs = exporter.rigs_to_export(context.selected_objects, context.active_object)
            written = exporter.export_rigs(
                rigs, path, preset_name=self.preset, include_camera=self.include_camera,
                correctives=exporter.BAKE if self.bake_correctives else exporter.KEYS,
            )  # fmt: skip
        except CaptureError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"SMPL-X Capture: exported {written.name}")
        return {"FINISHED"}


def menu_export(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(SMPLX_CAPTURE_OT_export.bl_idname, text="SMPL-X Rig (.fbx/.glb)")


def register_menus() -> None:
    bpy.types.TOPBAR_MT_file_export.append(menu_export)


def unregister_menus() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(menu_export)


CLASSES = (
    SMPLX_CAPTURE_OT_fit,
    SMPLX_CAPTURE_OT_fit_video,
    SMPLX_CAPTURE_OT_fit_person,
    SMPLX_CAPTURE_OT_cancel,
    SMPLX_CAPTURE_OT_reset_pose,
    SMPLX_CAPTURE_OT_fit_bones,
    SMPLX_CAPTURE_OT_look_through,
    SMPLX_CAPTURE_OT_export,
)
