"""IK controls for a fitted rig's arms and legs, on request: a target for each hand and
foot and a pole target for each elbow and knee, empties in a collection of their own,
driving an IK constraint on the forearm or shin (two bones: the upper limb too).

The deform bones and their names stay as they are; the switch between FK and IK is the
IK constraint's influence (1 = IK), and switching snaps both ways so the pose does not
jump: to FK, the bones take the pose the IK shows; to IK, the target goes to the hand
or foot and the pole angle is turned until the IK pose is the FK pose. Blender's IK
starts from the FK pose, so at the target it keeps the bones' twist too.

`bake_visual_pose` turns whatever constraints show (IK, floor) into the bones' own
rotations: the exporter does it on its copies, so files carry no controls.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..body_model.names import JOINT_NAMES
from ..errors import CaptureError
from .scene import PROP_ROLE

# limb -> (upper bone, lower bone carrying the IK constraint, end bone the target stands for)
LIMBS = {
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_leg": ("left_hip", "left_knee", "left_ankle"),
    "right_leg": ("right_hip", "right_knee", "right_ankle"),
}
IK_CONSTRAINT = "SMPL-X IK"
ROLE_TARGET, ROLE_POLE = "ik_target", "ik_pole"
PROP_LIMB = "smplx_capture_limb"
PROP_CONTROLS = "smplx_capture_controls"  # on the controls' collection
POLE_DISTANCE = 0.4  # metres in front of the elbow or knee
SNAP_TOLERANCE_RAD = math.radians(0.01)


def controls_collection(armature: bpy.types.Object) -> bpy.types.Collection | None:
    """The collection of `armature`'s IK controls (the one holding its targets), if any."""
    constraint = armature.pose.bones[LIMBS["left_arm"][1]].constraints.get(IK_CONSTRAINT)
    if constraint is None or constraint.target is None:
        return None
    return next((c for c in constraint.target.users_collection if c.get(PROP_CONTROLS)), None)


def has_ik(armature: bpy.types.Object) -> bool:
    return armature.pose.bones[LIMBS["left_arm"][1]].constraints.get(IK_CONSTRAINT) is not None


def add_ik_controls(fit: bpy.types.Collection, armature: bpy.types.Object) -> bpy.types.Collection:
    """Targets and poles for the four limbs, in a collection inside the fit's, and the IK
    constraints, switched on (IK) where the limbs stand now."""
    if has_ik(armature):
        raise CaptureError(f"'{armature.name}' has IK controls already.")
    collection = bpy.data.collections.new(f"{armature.name} controls")
    collection[PROP_CONTROLS] = True
    fit.children.link(collection)
    for limb, (_, lower, _) in LIMBS.items():
        target = _control(f"{armature.name} {limb} target", ROLE_TARGET, limb, "CUBE", collection)
        pole = _control(f"{armature.name} {limb} pole", ROLE_POLE, limb, "SPHERE", collection)
        constraint = armature.pose.bones[lower].constraints.new("IK")
        constraint.name = IK_CONSTRAINT
        constraint.target, constraint.pole_target = target, pole
        constraint.chain_count = 2
        constraint.influence = 0.0
        set_ik(armature, limb, True)
    return collection


def _control(
    name: str, role: str, limb: str, shape: str, collection: bpy.types.Collection
) -> bpy.types.Object:
    control = bpy.data.objects.new(name, None)
    collection.objects.link(control)
    control.empty_display_type = shape
    control.empty_display_size = 0.05 if role == ROLE_TARGET else 0.03
    control.show_in_front = True
    control[PROP_ROLE] = role
    control[PROP_LIMB] = limb
    return control


def remove_ik_controls(armature: bpy.types.Object) -> None:
    """Back to FK where the limbs stand, the constraints and controls gone."""
    collection = controls_collection(armature)
    for limb, (_, lower, _) in LIMBS.items():
        constraint = armature.pose.bones[lower].constraints.get(IK_CONSTRAINT)
        if constraint is None:
            continue
        set_ik(armature, limb, False)
        armature.pose.bones[lower].constraints.remove(constraint)
    if collection is not None:
        for control in list(collection.objects):
            bpy.data.objects.remove(control)
        bpy.data.collections.remove(collection)


def is_ik(armature: bpy.types.Object, limb: str) -> bool:
    constraint = armature.pose.bones[LIMBS[limb][1]].constraints.get(IK_CONSTRAINT)
    return constraint is not None and constraint.influence > 0.5


def set_ik(armature: bpy.types.Object, limb: str, on: bool) -> None:
    """Switch `limb` to IK (`on`) or FK, snapping so that its pose does not change."""
    upper, lower, end = LIMBS[limb]
    constraint = armature.pose.bones[lower].constraints.get(IK_CONSTRAINT)
    if constraint is None:
        raise CaptureError(f"'{armature.name}' has no IK controls: add them first.")
    if on:
        _snap_controls_to_fk(armature, constraint, upper, lower, end)
    else:
        shown = _pose_matrices(armature, (upper, lower))
        constraint.influence = 0.0
        _set_pose_matrices(armature, shown)


def _snap_controls_to_fk(
    armature: bpy.types.Object, constraint: bpy.types.Constraint, upper: str, lower: str, end: str
) -> None:
    """Put the target on the end bone and the pole in front of the middle joint, switch IK
    on, and turn the pole angle until the IK pose is the FK pose."""
    constraint.influence = 0.0
    fk = _pose_matrices(armature, (upper, lower))
    bones = armature.pose.bones
    world = armature.matrix_world
    root, middle, tip = bones[upper].head, bones[lower].head, bones[end].head
    bend = middle - (root + tip) / 2
    if bend.length < 1e-4:  # a straight limb: the pole in front of a knee, behind an elbow
        bend = Vector((0.0, -1.0 if "leg" in constraint.target[PROP_LIMB] else 1.0, 0.0))
    constraint.target.matrix_world = world @ Matrix.Translation(tip)
    pole = middle + bend.normalized() * POLE_DISTANCE
    constraint.pole_target.matrix_world = world @ Matrix.Translation(pole)
    constraint.influence = 1.0
    for _ in range(4):  # the pole angle turns the chain about root->tip: one step is nearly exact
        error = _roll_error(armature, fk, upper, lower, end)
        if abs(error) < SNAP_TOLERANCE_RAD:
            break
        constraint.pole_angle += error


def _roll_error(armature: bpy.types.Object, fk: dict[str, Matrix], upper: str, lower: str, end: str) -> float:
    """How far (radians) the IK chain is turned about its root-to-tip axis from the FK one."""
    ik = _pose_matrices(armature, (upper, lower, end))
    root, tip = np.array(ik[upper].translation), np.array(ik[end].translation)
    axis = (tip - root) / np.linalg.norm(tip - root)

    def across(point: Vector) -> np.ndarray:
        offset = np.array(point) - root
        offset -= axis * (offset @ axis)
        return offset / max(np.linalg.norm(offset), 1e-12)

    wanted, shown = across(fk[lower].translation), across(ik[lower].translation)
    return math.atan2(np.cross(shown, wanted) @ axis, shown @ wanted)


def _pose_matrices(armature: bpy.types.Object, names) -> dict[str, Matrix]:
    """The bones' evaluated (constrained) matrices in armature space."""
    bpy.context.view_layer.update()
    return {name: armature.pose.bones[name].matrix.copy() for name in names}


def _set_pose_matrices(armature: bpy.types.Object, matrices: dict[str, Matrix]) -> None:
    """Give bones these armature-space matrices through their own transforms, parents first."""
    for name in sorted(matrices, key=JOINT_NAMES.index):
        armature.pose.bones[name].matrix = matrices[name]
        bpy.context.view_layer.update()


def bake_visual_pose(armature: bpy.types.Object) -> None:
    """Every bone's constrained pose made its own and every constraint removed: the rig
    shows the same pose with no controls."""
    if not any(bone.constraints for bone in armature.pose.bones):
        return
    shown = _pose_matrices(armature, JOINT_NAMES)
    for bone in armature.pose.bones:
        for constraint in list(bone.constraints):
            bone.constraints.remove(constraint)
    _set_pose_matrices(armature, shown)
