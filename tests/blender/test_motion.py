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
from mathutils import Matrix, Vector
from test_export import MM, keyed_frames, ufbx_facts

from smplx_capture_addon.blender_builders import animation, rig
from smplx_capture_addon.blender_builders.scene import build_fit
from smplx_capture_addon.body_model import numpy_body
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.cli import main
from smplx_capture_addon.export import root_motion
from smplx_capture_addon.export.exporter import export_rigs
from smplx_capture_addon.export.presets import PRESETS
from smplx_capture_addon.export.root_motion import ROOT_BONE
from smplx_capture_addon.motion_format import (
    BRIDGED,
    FITTED,
    GroundPlane,
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
STEP = 2  # make_motion's clip was fitted every other frame...
KEYED = [1 + STEP * k for k in range(FRAMES)]  # ...so its frames are keyed on every other scene frame
LAST = KEYED[-1]
CLIP_FPS = 30.0  # the scene runs at the clip's rate
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
    assert (scene.frame_start, scene.frame_end) == (1, LAST)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(CLIP_FPS)
    assert keyed_frames(armature) == set(map(float, KEYED))
    frames_model = rig.bone_frames_model(armature)
    expressions = animation.expression_keys(mesh)
    first_expression = motion.frames[0].expression
    for number, frame in enumerate(motion.frames):
        scene.frame_set(KEYED[number])
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
    assert keyed_frames(armature) == set(map(float, KEYED))
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, LAST)


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
    checked = [1, 5, 6, LAST]  # 6: between two keys
    expected = _joints_at_frames(built.people[0].armature, checked)
    path = export_rigs([built.people[0].armature], tmp_path / f"photo{suffix}", preset_name=preset)
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, LAST)  # kept as it was

    armature = _reimport_rig(path)
    assert keyed_frames(armature) >= set(map(float, range(1, LAST + 1)))  # every scene frame
    np.testing.assert_allclose(_joints_at_frames(armature, checked), expected, atol=MM)
    on_root_bone = suffix == ".fbx" and PRESETS[preset].root_bone
    root = [ROOT_BONE] if on_root_bone else []
    assert sorted(b.name for b in armature.data.bones) == sorted([*JOINT_NAMES, *root])
    assert armature.name == ("Armature" if preset == "unreal" and suffix == ".fbx" else "photo rig")
    if suffix == ".fbx":
        facts = ufbx_facts(path)
        (stack,) = facts["anim_stacks"]
        assert stack[1] - stack[0] == pytest.approx((LAST - 1) / CLIP_FPS, abs=1e-3)  # the clip's length
        assert facts["bones"] == sorted([*JOINT_NAMES, *root])
        assert facts["parents"]["pelvis"] == (ROOT_BONE if on_root_bone else armature.name)


def _reimport_rig(path: Path) -> bpy.types.Object:
    """The one armature of an exported file, read back by Blender's importer."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if path.suffix == ".glb":  # glTF keeps seconds: read at the clip's rate, its keys land on its frames
        bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = int(CLIP_FPS), 1.0
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:  # no offset: Blender's importer shifts FBX animation by one frame unless told not to
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    (armature,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    return armature


def _bone_heads_world(armature: bpy.types.Object, name: str, frames: list[int]) -> np.ndarray:
    heads = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        heads.append(np.array(armature.matrix_world @ armature.pose.bones[name].head))
    return np.stack(heads)


def _bone_turns_world(armature: bpy.types.Object, name: str, frames: list[int]) -> np.ndarray:
    """(F, 3, 3) how the bone is turned in the world at each frame from the first."""
    turns = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        matrix = np.array((armature.matrix_world @ armature.pose.bones[name].matrix).to_3x3())
        turns.append(matrix / np.linalg.norm(matrix, axis=0))  # without the import's unit scale
    return np.stack([turn @ turns[0].T for turn in turns])


TILTED_GROUND = GroundPlane(normal=(np.array([0.1, -1.0, 0.05]) / np.linalg.norm([0.1, -1.0, 0.05])).tolist(),
                            offset=0.9)  # fmt: skip


@pytest.mark.parametrize("preset", ["unreal", "unity"])
@pytest.mark.parametrize("ground", [None, TILTED_GROUND], ids=["lowest-foot", "ground-plane"])
def test_root_motion_is_on_a_root_bone_at_the_ground_for_engines(small_model, tmp_path, preset, ground):
    """The root bone carries the pelvis's travel along the ground and its heading (relative
    to frame 1), it stands on the ground, and every joint is where the scene has it."""
    motion = make_motion(small_model)
    motion.ground = ground
    for k, frame in enumerate(motion.frames):  # turning about the camera's vertical, 0.1 rad a frame
        orient = Vector(frame.global_orient)
        turned = Matrix.Rotation(0.1 * k, 3, "Y") @ Matrix.Rotation(orient.length, 3, orient.normalized())
        axis, angle = turned.to_quaternion().to_axis_angle()
        frame.global_orient = list(axis * angle)
    built = animation.build_motion(motion, small_model, name="photo")
    original = built.people[0].armature
    frames = list(range(1, LAST + 1))
    expected = _joints_at_frames(original, frames)
    if ground is None:  # level under the lowest foot joint over the clip
        feet = [JOINT_NAMES.index(name) for name in root_motion.FOOT_JOINTS]
        normal, offset = np.array([0.0, 0.0, 1.0]), expected[:, feet, 2].min()
    else:
        normal, offset = np.array(original[animation.PROP_GROUND][:3]), original[animation.PROP_GROUND][3]
        assert np.linalg.norm(normal - [0.0, 0.0, 1.0]) > 0.05  # a tilt the level rule would miss
    pelvis = expected[:, 0]
    travel = (pelvis - pelvis[0]) - np.outer((pelvis - pelvis[0]) @ normal, normal)
    assert np.linalg.norm(travel[-1]) > 0.2  # the motion walks
    hips = expected[:, JOINT_NAMES.index("left_hip")] - expected[:, JOINT_NAMES.index("right_hip")]
    heading = np.cross(normal, hips)  # the body's front, along the ground
    heading /= np.linalg.norm(heading, axis=1, keepdims=True)
    turn = np.arctan2(np.cross(heading[0], heading) @ normal, heading @ heading[0])
    assert abs(turn[-1]) > 0.4  # the motion turns

    path = export_rigs([original], tmp_path / "photo.fbx", preset_name=preset)
    armature = _reimport_rig(path)

    root = _bone_heads_world(armature, ROOT_BONE, frames)
    np.testing.assert_allclose(root - root[0], travel, atol=MM)
    np.testing.assert_allclose(root @ normal, offset, atol=MM)  # on the ground
    turns = _bone_turns_world(armature, ROOT_BONE, frames)
    for k, frame_turn in enumerate(turns):
        about_normal = np.array(Matrix.Rotation(float(turn[k]), 3, normal.tolist()))
        np.testing.assert_allclose(frame_turn, about_normal, atol=0.02, err_msg=f"frame {frames[k]}")
    np.testing.assert_allclose(_joints_at_frames(armature, frames), expected, atol=MM)
    nodes = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        nodes.append(np.array(armature.matrix_world))
    np.testing.assert_allclose(nodes, [nodes[0]] * LAST, atol=1e-6)  # the armature node holds still


def test_a_still_export_keeps_its_55_bones_and_node_for_every_preset(small_model, tmp_path):
    still = build_fit(frame_as_result(make_motion(small_model)), small_model, name="photo")
    for preset in PRESETS:
        path = export_rigs([still.people[0].armature], tmp_path / f"{preset}.fbx", preset_name=preset)
        facts = ufbx_facts(path)
        assert facts["bones"] == sorted(JOINT_NAMES), preset
        assert facts["parents"]["pelvis"] == "photo rig", preset
