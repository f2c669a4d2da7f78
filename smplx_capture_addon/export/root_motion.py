"""Root motion on a root bone, for the engines that read it from the skeleton (see presets).

In the scene, an animated rig's root is its armature object, keyed per frame; the FBX
writes that as the armature node's animation. Unreal's "Enable Root Motion" reads the
skeleton's root bone and Unity's Generic rigs the bone picked as "Root node", so the
exports for them get a bone ROOT_BONE instead: on the ground under the pelvis, parent of
the pelvis, keyed per frame with the pelvis's travel along the ground and its heading
(the turn about the ground's normal), both relative to the first frame. The armature
node holds the first frame's placement throughout, and the pelvis is keyed with the
rest (height, tilt, the sway about the heading): every joint stays where the scene has
it on every frame.

The ground is the motion's ground plane where the rig has one (PROP_GROUND, written by
`animation.build_motion`), else the level (world Z up) of the lowest foot joint over
the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

from ..blender_builders import rig as rig_builder
from ..blender_builders.animation import PROP_GROUND

ROOT_BONE = "root"
PELVIS = "pelvis"
FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")
BODY_FRONT = np.array([0.0, -1.0, 0.0])  # where the rest body faces, in armature space
ROOT_LENGTH = 0.2  # metres


@dataclass(frozen=True)
class Sample:
    """One frame of the original rig, in world metres."""

    armature: np.ndarray  # (4, 4) the armature object's world matrix
    pelvis: np.ndarray  # (4, 4) the pelvis's pose matrix, armature space
    feet: np.ndarray  # (len(FOOT_JOINTS), 3) the foot joints, world


@dataclass(frozen=True)
class Ground:
    normal: np.ndarray  # unit, world, pointing from the floor to the body
    offset: float  # normal . x for the points x of the floor


def sample(armature: bpy.types.Object) -> Sample:
    """The rig as the scene shows it on the current frame."""
    world = np.array(armature.matrix_world)
    heads = np.array([armature.pose.bones[name].head for name in FOOT_JOINTS])
    feet = heads @ world[:3, :3].T + world[:3, 3]
    return Sample(world, np.array(armature.pose.bones[PELVIS].matrix), feet)


def ground_of(armature: bpy.types.Object, samples: list[Sample]) -> Ground:
    """The motion's ground plane when the rig keeps one, else level under the lowest foot."""
    kept = armature.get(PROP_GROUND)
    if kept is not None:
        normal = np.array(kept[:3], dtype=np.float64)
        return Ground(normal / np.linalg.norm(normal), float(kept[3]))
    return Ground(np.array([0.0, 0.0, 1.0]), min(float(s.feet[:, 2].min()) for s in samples))


def _on_ground(point: np.ndarray, ground: Ground) -> np.ndarray:
    return point - (ground.normal @ point - ground.offset) * ground.normal


def _heading(sample_: Sample, pelvis_rest: np.ndarray, ground: Ground) -> np.ndarray:
    """The body's front in world space, flattened onto the ground (unit)."""
    turn = sample_.armature[:3, :3] @ sample_.pelvis[:3, :3] @ pelvis_rest[:3, :3].T
    front = turn @ BODY_FRONT
    front = front - (ground.normal @ front) * ground.normal
    return front / np.linalg.norm(front)


def _turn_about(axis: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """3x3 rotation about `axis` taking direction `start` to `end` (both normal to it)."""
    angle = np.arctan2(axis @ np.cross(start, end), start @ end)
    return np.array(Matrix.Rotation(float(angle), 3, axis.tolist()))


def _translation(offset: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def root_travel(samples: list[Sample], pelvis_rest: np.ndarray, ground: Ground) -> np.ndarray:
    """(F, 4, 4) per frame, the world transform taking the first frame's root to this
    frame's: the pelvis's travel along the ground and its turn about the ground's normal."""
    first_point = _on_ground((samples[0].armature @ samples[0].pelvis)[:3, 3], ground)
    first_front = _heading(samples[0], pelvis_rest, ground)
    travel = []
    for each in samples:
        point = _on_ground((each.armature @ each.pelvis)[:3, 3], ground)
        turn = np.eye(4)
        turn[:3, :3] = _turn_about(ground.normal, first_front, _heading(each, pelvis_rest, ground))
        travel.append(_translation(point) @ turn @ _translation(-first_point))
    return np.stack(travel)


def add_root_bone(rig: bpy.types.Object, samples: list[Sample], ground: Ground, scale: float) -> None:
    """Give the copy `rig` (its data scaled by `scale`) the bone ROOT_BONE, parent of the
    pelvis: on the ground under the first frame's pelvis, along the ground where the body
    faces, its Z axis up. Not pointing up at the pelvis: importers (Blender's) connect a
    lone child lying along its parent, and a connected pelvis would lose its height."""
    first = samples[0]
    to_armature = np.linalg.inv(first.armature)
    foot_of_pelvis = _on_ground((first.armature @ first.pelvis)[:3, 3], ground)
    head = (to_armature[:3, :3] @ foot_of_pelvis + to_armature[:3, 3]) * scale
    front = to_armature[:3, :3] @ _heading(first, _rest(rig, PELVIS, scale), ground)
    with rig_builder.edit_mode(rig):
        root = rig.data.edit_bones.new(ROOT_BONE)
        root.head = head.tolist()
        root.tail = (head + ROOT_LENGTH * scale * front).tolist()
        root.align_roll((to_armature[:3, :3] @ ground.normal).tolist())
        pelvis = rig.data.edit_bones[PELVIS]
        pelvis.use_connect = False
        pelvis.parent = root
    rig.pose.bones[ROOT_BONE].rotation_mode = "QUATERNION"


def _rest(rig: bpy.types.Object, name: str, scale: float) -> np.ndarray:
    """A bone's rest matrix in the unscaled armature space of the original."""
    matrix = np.array(rig.data.bones[name].matrix_local)
    matrix[:3, 3] /= scale
    return matrix


def _set_basis(bone: bpy.types.PoseBone, basis: np.ndarray, scale: float, frame: int) -> None:
    """Key `basis` (unscaled) on `bone` of the scaled copy, its quaternion on the side of
    the previous key's so that interpolation takes the short way."""
    previous = bone.rotation_quaternion.copy()
    bone.matrix_basis = Matrix(basis.tolist())
    bone.location = bone.location * scale
    if previous.dot(bone.rotation_quaternion) < 0.0:
        bone.rotation_quaternion = -bone.rotation_quaternion
    bone.keyframe_insert("location", frame=frame)
    bone.keyframe_insert("rotation_quaternion", frame=frame)


def key_root_motion(rig: bpy.types.Object, samples: list[Sample], ground: Ground, scale: float,
                    frames: range) -> None:  # fmt: skip
    """Move the root motion of the copy `rig` (keyed on `frames` as `samples` show them)
    from its armature node to a new ROOT_BONE: the node keyed at the first frame's
    placement, the root with the travel and heading, the pelvis with the rest."""
    add_root_bone(rig, samples, ground, scale)
    root_rest, pelvis_rest = _rest(rig, ROOT_BONE, scale), _rest(rig, PELVIS, scale)
    placement = samples[0].armature
    to_armature = np.linalg.inv(placement)
    node = Matrix(placement.tolist())
    node.translation = node.translation * scale
    root, pelvis = rig.pose.bones[ROOT_BONE], rig.pose.bones[PELVIS]
    rotation = "rotation_quaternion" if rig.rotation_mode == "QUATERNION" else "rotation_euler"
    travel = root_travel(samples, pelvis_rest, ground)
    for frame, each, moved in zip(frames, samples, travel, strict=True):
        rig.matrix_world = node
        rig.keyframe_insert("location", frame=frame)
        rig.keyframe_insert(rotation, frame=frame)
        root_pose = to_armature @ moved @ placement @ root_rest
        _set_basis(root, np.linalg.inv(root_rest) @ root_pose, scale, frame)
        pelvis_pose = to_armature @ each.armature @ each.pelvis
        parent_rest = root_pose @ np.linalg.inv(root_rest) @ pelvis_rest
        _set_basis(pelvis, np.linalg.inv(parent_rest) @ pelvis_pose, scale, frame)
