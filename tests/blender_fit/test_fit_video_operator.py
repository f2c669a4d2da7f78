"""Fit a Video end to end in Blender: the operator gives the rendered walking clip
(devtools/video_clip.py) to the real warm worker (MediaPipe, the solver; a few frames)
and builds one rig with an Action over the clip; a cancel mid-clip builds the frames done,
marked partial, and a cancel before the first frame builds nothing; a file that is not a
video gets a message that says what to do and leaves the scene as it was. Needs the
solver's packages (torch, mediapipe): Python 3.11 only."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
import numpy as np
import pytest

from smplx_capture_addon.blender_builders.animation import PROP_MOTION, PROP_PARTIAL
from smplx_capture_addon.blender_builders.scene import PROP_ROLE
from smplx_capture_addon.blender_ui import fit_job
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.devtools import video_clip
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.motion_format import BRIDGED, FITTED, read_motion
from smplx_capture_addon.video.request import VideoRequest
from smplx_capture_addon.worker import runner


@pytest.fixture(scope="module")
def clip() -> Path:
    return video_clip.clip() / "clip.mp4"


def keyed_frames(obj: bpy.types.Object) -> set[float]:
    frames: set[float] = set()
    for layer in obj.animation_data.action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for curve in bag.fcurves:
                    frames |= {point.co[0] for point in curve.keyframe_points}
    return frames


def test_the_video_operator_builds_one_rig_with_an_action_over_the_clip(addon, clip, run_job_operator):
    """Frames 10 to 13 of the walk (the walker is left out of frame 12): one rig keyed on
    four frames at the clip's rate, the clip behind it from its frame 10."""
    settings = bpy.context.scene.smplx_capture
    settings.video, settings.video_start, settings.video_end = str(clip), 10, 13
    settings.model, settings.device = "DEFAULT", "cpu"
    job = run_job_operator(bpy.ops.smplx_capture.fit_video, "video fit + build")
    assert job.kind == "video"

    collection = bpy.data.collections["clip"]
    assert collection[PROP_MOTION] == 4 and not collection[PROP_PARTIAL]
    objects = {o[PROP_ROLE]: o for o in collection.objects}
    armature, camera = objects["armature"], objects["camera"]
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 4)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(30.0)
    assert keyed_frames(armature) == {1.0, 2.0, 3.0, 4.0}
    poses = []
    for frame in (1, 4):
        scene.frame_set(frame)
        poses.append([tuple(armature.pose.bones[name].rotation_quaternion) for name in JOINT_NAMES])
    assert np.abs(np.subtract(*poses)).max() > 0.01  # a walk: the legs turn between frames 10 and 13

    (background,) = camera.data.background_images
    assert background.source == "MOVIE_CLIP" and camera.data.show_background_images
    movie = background.clip
    assert Path(movie.filepath).resolve() == clip.resolve() and tuple(movie.size) == (480, 360)
    assert (movie.frame_start, movie.frame_offset) == (1, 10)  # scene frame 1 shows the clip's frame 10


def test_a_cancel_mid_clip_builds_the_frames_done_marked_partial_and_before_any_frame_nothing(clip):
    request = VideoRequest(FitRequest(photo=str(clip), device="cpu"))
    job, out_dir = fit_job.start_fit(request)
    messages = []
    deadline = time.monotonic() + 300
    while job.poll().fraction < 2 / 32 and not job.state.finished and time.monotonic() < deadline:
        if job.state.message not in messages:
            messages.append(job.state.message)
        time.sleep(0.05)
    assert not job.state.finished, job.state.error
    job.cancel()
    cancelled_at = time.monotonic()
    state = job.wait(interval=0.05)
    assert time.monotonic() - cancelled_at < runner.CANCEL_GRACE_S
    assert job.process.poll() is None  # the fit stopped itself: the worker serves on
    assert state.status == runner.DONE and state.partial, state.error
    assert "frame 1 of 32 (clip frame 0: fitted)" in messages
    motion = read_motion(state.result_path)
    done = len(motion.frames)
    assert motion.partial and 2 <= done < 32
    assert [f.index for f in motion.frames] == list(range(done))
    assert {f.flag for f in motion.frames} <= {FITTED, BRIDGED}

    objects_before = set(bpy.data.objects)
    built = fit_job.finish_video_fit(state, request)
    fit_job.remove_job_folder(out_dir)
    assert built.collection.name == "clip (partial)" and built.collection[PROP_PARTIAL]
    assert built.warnings[0] == (
        f"The video fit was cancelled: 'clip (partial)' holds only the {done} frames fitted before the "
        "cancel."
    )
    assert bpy.context.scene.frame_end == done and set(bpy.data.objects) > objects_before

    # Cancelled at once: no frame fitted, so no motion, and nothing to build.
    objects_before = set(bpy.data.objects)
    job, out_dir = fit_job.start_fit(request)
    job.cancel()
    state = job.wait(interval=0.05)
    assert state.status == runner.CANCELLED and not list(out_dir.iterdir())
    with pytest.raises(CaptureError, match="cancelled before a frame was fitted: nothing was built"):
        fit_job.finish_video_fit(state, request)
    assert set(bpy.data.objects) == objects_before
    fit_job.remove_job_folder(out_dir)


def test_a_file_that_is_not_a_video_says_so_and_leaves_the_scene_as_it_was(addon, tmp_path):
    broken = tmp_path / "holiday.mp4"
    broken.write_text("this is no video")
    bpy.ops.mesh.primitive_cube_add()
    scene = bpy.context.scene

    def scene_state() -> tuple:
        return sorted(o.name for o in bpy.data.objects), scene.frame_start, scene.frame_end, scene.camera

    before = scene_state()
    settings = scene.smplx_capture
    settings.video, settings.device = str(broken), "cpu"
    with pytest.raises(RuntimeError, match="not a video this add-on can read"):  # the operator's ERROR report
        bpy.ops.smplx_capture.fit_video()
    job = bpy.context.window_manager.smplx_capture_job
    assert job.error == (
        f"{broken}: not a video this add-on can read. Use an mp4, mov, avi or webm file, or a folder of "
        "numbered images."
    )
    assert not job.running and job.status == "Failed."
    assert scene_state() == before
