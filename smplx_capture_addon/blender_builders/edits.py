"""What the artist changed on a fitted rig, read back for a re-fit that keeps it: the
rig's pose as a result's parameters, the bones rotated since the fit, and the bones
pinned by hand (a property of the pose bone).

A rig's pose maps back exactly onto the parameters it was built from (`rig.set_pose`
inverted): each bone's rotation in its rest axes as the rig shows it (IK controls
included) is turned into model space, and the
root's rotation and the body's translation come from the armature object (and the pelvis
bone) seen from the fitted camera, so moving the camera and the rig together changes
nothing.
"""

from __future__ import annotations

import math
from dataclasses import replace

import bpy
import numpy as np

from ..body_model import numpy_body
from ..body_model.names import JOINT_NAMES, POSE_BLOCKS
from ..errors import CaptureError
from ..result_format import FitResult, PersonFit
from . import placement, rig
from .scene import PROP_PERSON, PROP_ROLE

PROP_PINNED = "smplx_capture_pinned"  # on a pose bone: its rotation is held in a re-fit
EDITED_ABOVE_RAD = math.radians(0.05)  # a bone turned further than this from the fit was edited


def pinned_bones(armature: bpy.types.Object) -> list[str]:
    """The pinned bones of `armature`, in the skeleton's order."""
    return [name for name in JOINT_NAMES if armature.pose.bones[name].get(PROP_PINNED)]


def set_pinned(armature: bpy.types.Object, names: list[str], pinned: bool) -> None:
    """Pin (or unpin) the bones `names`: a re-fit keeps their rotations."""
    for name in names:
        if name not in JOINT_NAMES:
            continue  # a bone the artist added to the rig: not one the fit knows
        bone = armature.pose.bones[name]
        if pinned:
            bone[PROP_PINNED] = True
        elif PROP_PINNED in bone:
            del bone[PROP_PINNED]


def world_from_camera(camera: bpy.types.Object) -> np.ndarray:
    """4x4 world matrix of the fitted (OpenCV) camera frame of the Blender camera object."""
    return np.array(camera.matrix_world) @ placement.rigid(placement.OPENCV_TO_BLENDER_CAMERA, np.zeros(3))


def posed_person(
    armature: bpy.types.Object, mesh: bpy.types.Object | None, camera: bpy.types.Object, fitted: PersonFit
) -> PersonFit:
    """The person as the rig stands now, in the result's parameters: bone rotations, the
    root's place seen from `camera`, the shape sliders added to the fitted shape and the
    expression keys' values (the fit's other fields are carried over)."""
    bpy.context.view_layer.update()  # the pose as shown: IK and floor constraints included
    pelvis = armature.pose.bones[JOINT_NAMES[0]]
    # The pelvis bone carries every other bone: its pose moves the whole body like the object.
    root_pose = np.array(pelvis.matrix) @ np.linalg.inv(np.array(pelvis.bone.matrix_local))
    world_from_armature = np.array(armature.matrix_world) @ root_pose
    camera_from_model = (
        np.linalg.inv(world_from_camera(camera))
        @ world_from_armature
        @ placement.rigid(placement.MODEL_TO_BLENDER, np.zeros(3))
    )
    rotation = _orthonormal(camera_from_model[:3, :3])
    rest_pelvis = placement.MODEL_TO_BLENDER.T @ np.array(pelvis.bone.head_local)
    # Inverts placement.camera_from_model: p_cam = R (p - j0) + j0 + t.
    transl = camera_from_model[:3, 3] - rest_pelvis + rotation @ rest_pelvis
    frames = rig.bone_frames_model(armature)
    rotations = np.empty((len(JOINT_NAMES), 3, 3))
    rotations[0] = rotation
    for joint, name in enumerate(JOINT_NAMES[1:], start=1):
        bone_local = _orthonormal(_shown_rotation(armature.pose.bones[name]))
        rotations[joint] = frames[joint] @ bone_local @ frames[joint].T
    pose = numpy_body.matrix_to_axis_angle(rotations)
    blocks, first = {}, 0
    for block, joints in POSE_BLOCKS:
        blocks[block] = pose[first : first + joints].ravel().tolist()
        first += joints
    betas, expression = _shape_and_expression(mesh, fitted)
    return replace(fitted, **blocks, transl=transl.tolist(), betas=betas, expression=expression)


def _shown_rotation(bone: bpy.types.PoseBone) -> np.ndarray:
    """The bone's rotation in its rest axes, relative to its parent, as the rig shows it
    (its constraints applied), which is its own rotation when it has none."""
    rest = np.array(bone.bone.matrix_local)[:3, :3]
    parent_rest = np.array(bone.parent.bone.matrix_local)[:3, :3]
    parent_shown = np.array(bone.parent.matrix)[:3, :3]
    shown = np.array(bone.matrix)[:3, :3]
    return rest.T @ parent_rest @ np.linalg.inv(parent_shown) @ shown


def _orthonormal(matrix: np.ndarray) -> np.ndarray:
    """The rotation nearest to `matrix` (drops a scale an artist gave the object)."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def _shape_and_expression(mesh: bpy.types.Object | None, fitted: PersonFit) -> tuple[list, list]:
    """The fitted shape plus the shape sliders (0 = as fitted), and the expression keys."""
    betas, expression = list(fitted.betas), list(fitted.expression)
    if mesh is None or mesh.data.shape_keys is None:
        return betas, expression
    shapes, expressions = 0, 0
    for key in mesh.data.shape_keys.key_blocks[1:]:
        if key.name.startswith(rig.SHAPE_KEY_PREFIX):
            if shapes < len(betas):
                betas[shapes] += key.value
            shapes += 1
        elif not key.name.startswith(rig.CORRECTIVE_PREFIX):
            if expressions < len(expression):
                expression[expressions] = key.value
            expressions += 1
    return betas, expression


def edited_bones(posed: PersonFit, fitted: PersonFit) -> list[str]:
    """The bones whose rotation differs from the fit's (pelvis: the body's orientation)."""
    now = numpy_body.axis_angle_to_matrix(numpy_body.full_pose(posed))
    then = numpy_body.axis_angle_to_matrix(numpy_body.full_pose(fitted))
    cosine = (np.einsum("jab,jab->j", now, then) - 1.0) / 2.0
    turned = np.arccos(np.clip(cosine, -1.0, 1.0))
    return [name for name, angle in zip(JOINT_NAMES, turned, strict=True) if angle > EDITED_ABOVE_RAD]


def refit_start(
    collection: bpy.types.Collection, result: FitResult
) -> tuple[FitResult, tuple[str, ...]]:
    """The fit `collection` shows, as its rigs stand now (for FitRequest.start), and the
    bones to hold: those the artist rotated since the fit or pinned, on any person (a
    batch holds the same joints for everyone)."""
    objects = {(o.get(PROP_ROLE), o.get(PROP_PERSON)): o for o in collection.objects}
    cameras = [o for o in collection.objects if o.get(PROP_ROLE) == "camera"]
    if not cameras:
        raise _lost("camera")
    held: list[str] = []
    people = []
    for index, fitted in enumerate(result.people):
        armature = objects.get(("armature", index))
        if armature is None:
            raise _lost("rig")
        posed = posed_person(armature, objects.get(("mesh", index)), cameras[0], fitted)
        held += edited_bones(posed, fitted) + pinned_bones(armature)
        people.append(posed)
    held_in_order = tuple(name for name in JOINT_NAMES if name in held)
    return replace(result, people=people), held_in_order


def _lost(what: str) -> CaptureError:
    return CaptureError(f"This fit has lost its {what}: a re-fit needs it. Fit the photo again instead.")
