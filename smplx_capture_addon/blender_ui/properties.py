"""Blender properties: the panel's settings (saved with the scene, so a re-fit keeps
them) and the running job's status (on the window manager: never saved, and never part
of the scene a failed fit must leave untouched)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    StringProperty,
)


def _picked(video: bool):
    """The update of the photo's (or the video's) path: the worker starts loading."""

    def update(_settings: bpy.types.PropertyGroup, context: bpy.types.Context) -> None:
        # An artist who picks a photo fits it next; a script (Blender in the background) may not.
        if not bpy.app.background:
            from .operators import prepare_fit

            prepare_fit(context, video)

    return update


class SMPLXCaptureSettings(bpy.types.PropertyGroup):
    image: StringProperty(
        name="Image", description="The photo to fit", subtype="FILE_PATH", update=_picked(video=False)
    )
    show_keypoints: BoolProperty(
        name="Show keypoints",
        description="Also draw the detected keypoints over the photo (a second camera background)",
        default=False,
    )
    person: EnumProperty(
        name="Person",
        items=[
            ("LARGEST", "Largest", "Fit the most prominent person"),
            ("NUMBER", "Number", "Fit the N-th person found (1 = the most prominent; see Show keypoints)"),
            ("BOX", "Box", "Fit the person inside a box drawn in pixels"),
            ("ALL", "All", "Fit every person found"),
        ],
        default="LARGEST",
    )
    person_number: IntProperty(name="Person number", description="1 = the most prominent", default=1, min=1)
    box: FloatVectorProperty(name="Box", description="x0, y0, x1, y1 in pixels", size=4, min=0.0)
    model: EnumProperty(
        name="Body",
        items=[
            ("DEFAULT", "Open default body", "The CC0 body bundled with the extension"),
            ("SMPLX", "SMPL-X", "Your SMPL-X files (folder set in the preferences)"),
        ],
        default="DEFAULT",
    )
    gender: EnumProperty(
        name="Gender",
        items=[("neutral", "Neutral", ""), ("male", "Male", ""), ("female", "Female", "")],
        default="neutral",
    )
    device: EnumProperty(
        name="Device",
        items=[
            ("cpu", "CPU", "Fit on the processor"),
            ("cuda", "GPU", "Fit on an NVIDIA GPU (CUDA)"),
            ("auto", "Auto", "GPU when there is one"),
        ],
        default="cpu",
    )
    focal_px: FloatProperty(
        name="Focal length (px)", description="0: from EXIF or a guess", default=0.0, min=0.0
    )
    video: StringProperty(
        name="Video",
        description="The video (mp4, mov, avi, webm) to fit frame by frame",
        subtype="FILE_PATH",
        update=_picked(video=True),
    )
    video_start: IntProperty(name="Start", description="The first frame to fit (from 0)", default=0, min=0)
    video_end: IntProperty(
        name="End", description="The last frame to fit, included (-1: the clip's last)", default=-1, min=-1
    )
    video_step: IntProperty(name="Step", description="Fit every N-th frame", default=1, min=1)
    video_ground: BoolProperty(
        name="Feet on the ground",
        description="Find the ground and hold the feet still where they stand on it (off: feet as fitted, "
        "for a person not standing on a floor)",
        default=True,
    )
    video_person: IntProperty(
        name="Person",
        description="The N-th person found in the first frame where anyone is (1 = the most prominent), "
        "then followed from frame to frame",
        default=1,
        min=1,
    )


class SMPLXCaptureJob(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    kind: StringProperty(name="Kind", description="The panel of the job: photo or video", default="photo")
    progress: FloatProperty(name="Progress", subtype="FACTOR", min=0.0, max=1.0)
    status: StringProperty(name="Status")
    error: StringProperty(name="Error")


CLASSES = (SMPLXCaptureSettings, SMPLXCaptureJob)


def register() -> None:
    bpy.types.Scene.smplx_capture = bpy.props.PointerProperty(type=SMPLXCaptureSettings)
    bpy.types.WindowManager.smplx_capture_job = bpy.props.PointerProperty(type=SMPLXCaptureJob)


def unregister() -> None:
    del bpy.types.WindowManager.smplx_capture_job
    del bpy.types.Scene.smplx_capture
