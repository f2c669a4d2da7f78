"""A video's motion in Blender's Python (3.11 and 3.13): the motion file read back and its
bad-file messages; `blend MOTION` builds one rig whose Action holds every frame's pose,
root and expression; FBX and glTF exports carry the animation (read back by Blender's
importers and by ufbx), posed joints within 1 mm at several frames."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_helpers import make_person, posed_joints_world, reference, world_to_opencv
from test_export import MM, keyed_frames, reimport, ufbx_facts

from smplx_capture_addon.blender_builders import animation, rig
from smplx_capture_addon.body_model import numpy_body
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.cli import main
from smplx_capture_addon.export.exporter import export_rigs
from smplx_capture_addon.motion_format import (
    BRIDGED,
    FITTED,
    Motion,
    MotionFormatError,
    MotionFrame,
    VideoInfo,
    frame_as_result,
    motion_from_dict,
    read_motion,
    write_motion,
)
from smplx_capture_addon.result_format import Camera, ModelIdentity

FRAMES = 6
POSE_NAMES = ("expression", "global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
              "left_hand_pose", "right_hand_pose", "transl")  # fmt: skip


def make_motion(data, frames: int = FRAMES) -> Motion:
    """A person turning and walking away over `frames` frames, one frame bridged."""
    start, end = make_person(seed=2, scale=0.25), make_person(seed=3, scale=0.25)
    moving = []
    for k in range(frames):
        t = k / (frames - 1)
        values = {n: ((1 - t) * np.array(getattr(start, n)) + t * np.array(getattr(end, n))).tolist()
                  for n in POSE_NAMES}  # fmt: skip
        values["transl"] = [0.1 + 0.05 * k, -0.2, 4.0 + 0.1 * k]
        flag = BRIDGED if k == 3 else FITTED
        residual = None if flag == BRIDGED else {"mean": 1.5, "max": 4.0}
        moving.append(MotionFrame(index=10 + 2 * k, flag=flag, box=None, residual_px=residual, **values))
    return Motion(
        model=ModelIdentity("smplx", Path(data.path).name, data.path, data.sha256, data.gender),
        video=VideoInfo("/videos/walk.mp4", 640, 480, 30.0, 10, 2),
        camera=Camera(700.0, [320.0, 240.0], "default-fov"),
        fps=15.0,
        betas=start.betas,
        frames=moving,
    )


def test_a_motion_file_reads_back_as_written(small_model, tmp_path):
    motion = make_motion(small_model)
    motion.partial = True
    path = write_motion(motion, tmp_path / "motion.json")
    assert read_motion(path) == motion
    assert [p.name for p in tmp_path.iterdir()] == ["motion.json"]  # no temporary left


REMOVED = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("format", "something-else"), "not an SMPL-X Capture motion"),
        (("version", 7), "motion version 7 is not supported"),
        (("frames", []), "the motion holds no frame"),
        (("fps", 0), "fps: must be above 0"),
        (("betas", "none"), "betas: must be a list"),
        (("partial", "yes"), "partial: must be true or false"),
        (("camera", REMOVED), "the field 'camera' is missing"),
        (("frames.1.transl", [0.0, math.nan, 4.0]), "frames[1].transl[1]: must be a finite number"),
        (("frames.1.flag", "guessed"), "frames[1].flag: must be one of fitted, bridged, lost"),
        (("frames.2.index", 15), "frames[2].index: must be 14"),
        (("frames.2.body_pose", [0.0] * 62), "frames[2].body_pose: must hold 63 values"),
        (("frames.0.global_orient", [40.0, 0.0, 0.0]), "frames[0].global_orient[0:3]: a turn of 40"),
        (("frames.3.residual_px", {"mean": 1.0, "max": 2.0}), "must be given for a fitted frame and null"),
        (("frames.0.residual_px", {"mean": 1.0}), "frames[0].residual_px: the field 'max' is missing"),
        (("frames.0.surprise", 1), "frames[0]: the field 'surprise' is unknown"),
        (("video.step", 0), "video.step: must be a whole number from 1"),
    ],
)
def test_a_bad_motion_file_gets_one_message_naming_the_field(small_model, tmp_path, change, message):
    document = json.loads(json.dumps(make_motion(small_model).to_dict()))
    where, value = change
    *parents, last = where.split(".")
    target = document
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is REMOVED:
        del target[last]
    else:
        target[last] = value
    path = tmp_path / "motion.json"
    path.write_text(json.dumps(document))
    with pytest.raises(MotionFormatError) as caught:
        read_motion(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(MotionFormatError, match="not a readable motion file"):
        path.write_text("{ cut short")
        read_motion(path)
    assert motion_from_dict(json.loads(json.dumps(make_motion(small_model).to_dict()))).fps == 15.0


def test_the_rig_is_keyed_on_every_frame_with_the_motions_pose_root_and_expression(small_model):
    motion = make_motion(small_model)
    built = animation.build_motion(motion, small_model)
    scene = bpy.context.scene
    armature, mesh = built.people[0].armature, built.people[0].mesh
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(15.0)
    assert keyed_frames(armature) == set(map(float, range(1, FRAMES + 1)))
    frames_model = rig.bone_frames_model(armature)
    expressions = animation.expression_keys(mesh)
    first_expression = motion.frames[0].expression
    for number, frame in enumerate(motion.frames):
        scene.frame_set(1 + number)
        rotations = numpy_body.axis_angle_to_matrix(numpy_body.full_pose(frame))
        expected = rig.bone_quaternions(frames_model, rotations)
        keyed = np.array([armature.pose.bones[name].rotation_quaternion for name in JOINT_NAMES])
        same_sign = np.sign(np.sum(keyed * expected, axis=1, keepdims=True))
        np.testing.assert_allclose(keyed * same_sign, expected, atol=1e-5)
        np.testing.assert_allclose([k.value for k in expressions], frame.expression[: len(expressions)],
                                   atol=1e-5)  # fmt: skip
        # The rig's joints seen from the fitted camera are the model's posed joints (rest joints of
        # the first frame's expression, as the rig was built).
        person = replace(frame_as_result(motion, number).people[0], expression=first_expression)
        joints_camera = world_to_opencv(built.camera, posed_joints_world(armature))
        np.testing.assert_allclose(joints_camera, reference(small_model, person).joints, atol=MM)


def test_blend_command_builds_a_motion_and_saves_it(small_model, tmp_path):
    path = write_motion(make_motion(small_model), tmp_path / "motion.json")
    assert main(["blend", str(path), "-o", str(tmp_path / "scene.blend"), "--model", small_model.path]) == 0
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    (armature,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert keyed_frames(armature) == set(map(float, range(1, FRAMES + 1)))
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, FRAMES)


def _joints_at_frames(armature: bpy.types.Object, frames: list[int]) -> np.ndarray:
    joints = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        joints.append(posed_joints_world(armature))
    return np.stack(joints)


@pytest.mark.parametrize(
    ("suffix", "preset"),
    [(".fbx", "unity"), (".fbx", "unreal"), (".fbx", "maya"), (".fbx", "generic"), (".glb", "generic")],
)
def test_an_exported_motion_reads_back_with_its_keyframes(small_model, tmp_path, suffix, preset):
    motion = make_motion(small_model)
    built = animation.build_motion(motion, small_model, name="photo")
    checked = [1, 3, 4, FRAMES]
    expected = _joints_at_frames(built.people[0].armature, checked)
    path = export_rigs([built.people[0].armature], tmp_path / f"photo{suffix}", preset_name=preset)
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, FRAMES)  # kept as it was

    if suffix == ".glb":  # glTF keeps seconds: read at the clip's rate, its keys land on its frames
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 15, 1.0
        bpy.ops.import_scene.gltf(filepath=str(path))
        armature = bpy.data.objects["photo rig"]
    else:
        armature, _ = reimport(path)
    assert keyed_frames(armature) >= set(map(float, range(1, FRAMES + 1)))
    np.testing.assert_allclose(_joints_at_frames(armature, checked), expected, atol=MM)
    if suffix == ".fbx":
        (stack,) = ufbx_facts(path)["anim_stacks"]
        assert stack[1] - stack[0] == pytest.approx((FRAMES - 1) / 15.0, abs=1e-3)  # the clip's length
