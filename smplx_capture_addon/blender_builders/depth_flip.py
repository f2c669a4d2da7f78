"""A bone turned to its other depth: from one photo, a limb pointing toward the camera
and the same limb pointing away look alike (the end of a bone of known length seen on a
ray meets that ray twice). The fit chooses one; where it chose wrong, the artist flips
the bone and the photo still sees what it saw.

Each flipped bone keeps the pixel its tail (the next joint) showed and takes the other
point of that ray at the bone's length from its head. Bones flipped together are flipped
parents first, so a whole limb flips with every joint where the photo shows it. Other
bones keep their own rotations and follow. A re-fit holds the flipped bones, as it holds
every bone rotated since the fit (`edits.refit_start`).
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..body_model.names import JOINT_NAMES
from ..errors import CaptureError
from . import controls

MOVED_ABOVE_M = 1e-6  # a tail moved less than this did not flip (the bone lies across the view)


def other_depth_tail(head: np.ndarray, seen_tail: np.ndarray, eye: np.ndarray, length: float,
                     nearer: bool) -> np.ndarray:  # fmt: skip
    """The point on the ray from `eye` through `seen_tail` at `length` from `head` (all (3,)),
    the one nearer the camera or the farther one; where the ray passes farther than `length`
    from `head`, the bone's end closest to that ray. -> (3,)."""
    ray = (seen_tail - eye) / np.linalg.norm(seen_tail - eye)
    middle = float(ray @ (head - eye))  # the ray's point closest to the head
    half_chord_squared = middle**2 - float((head - eye) @ (head - eye)) + length**2
    if half_chord_squared < 0.0:
        toward = eye + middle * ray - head
        return head + length * toward / np.linalg.norm(toward)
    half_chord = half_chord_squared**0.5
    return eye + (middle - half_chord if nearer else middle + half_chord) * ray


def _ik_limb_of(armature: bpy.types.Object, name: str) -> str | None:
    """The limb whose IK (switched on) moves the bone `name`, if any."""
    if not controls.has_ik(armature):
        return None
    return next((limb for limb, (upper, lower, _) in controls.LIMBS.items()
                 if name in (upper, lower) and controls.is_ik(armature, limb)), None)  # fmt: skip


def flip_in_depth(armature: bpy.types.Object, camera: bpy.types.Object, names: list[str]) -> list[str]:
    """Turn each bone of `names` (the rig's SMPL-X bones; others are ignored) to its other
    depth as seen from `camera`, parents first -> the bones that moved, in the skeleton's
    order. A bone an IK control moves is refused (the pose left as it was)."""
    bones = [name for name in JOINT_NAMES if name in names]
    for name in bones:
        limb = _ik_limb_of(armature, name)
        if limb is not None:
            raise CaptureError(
                f"'{name}' follows the IK of the {limb.replace('_', ' ')}: switch it to FK to flip it."
            )
    bpy.context.view_layer.update()
    # Armature space throughout: the rig's placement is rigid, so rays and bone lengths
    # there are the camera's.
    eye = np.array(armature.matrix_world.inverted() @ camera.matrix_world.translation)
    seen = {name: (np.array(armature.pose.bones[name].head), np.array(armature.pose.bones[name].tail))
            for name in bones}  # fmt: skip
    flipped = []
    for name in bones:
        bone = armature.pose.bones[name]
        head, tail = np.array(bone.head), np.array(bone.tail)
        seen_head, seen_tail = seen[name]
        length = float(np.linalg.norm(seen_tail - seen_head))
        ray = (seen_tail - eye) / np.linalg.norm(seen_tail - eye)
        # Which of its ray's two points the tail was at, seen from its own head.
        was_nearer = float(ray @ (seen_tail - eye)) < float(ray @ (seen_head - eye))
        target = other_depth_tail(head, seen_tail, eye, length, nearer=not was_nearer)
        if np.linalg.norm(target - tail) < MOVED_ABOVE_M:
            continue
        turn = Vector(tail - head).rotation_difference(Vector(target - head)).to_matrix().to_4x4()
        pivot = Matrix.Translation(Vector(head))
        bone.matrix = pivot @ turn @ pivot.inverted() @ bone.matrix
        bpy.context.view_layer.update()  # its children follow before they are flipped
        flipped.append(name)
    return flipped
