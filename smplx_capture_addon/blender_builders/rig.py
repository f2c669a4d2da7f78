"""Armature and skinned mesh of one fitted person (bpy + numpy).

Everything is built in armature space (Blender's Z-up model space, see `placement`); the
mesh is parented to the armature with an identity offset, so both share that space.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from ..body_model import numpy_body
from ..body_model.model_file import BodyModelData
from ..body_model.names import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS
from . import correctives
from .placement import MODEL_TO_BLENDER

# Which child a bone points at when it has several (the others hang off its head).
_PREFERRED_CHILD = {
    "pelvis": "spine1",
    "spine3": "neck",
    "left_wrist": "left_middle1",
    "right_wrist": "right_middle1",
}
# Bones that continue their parent's direction instead of pointing at a child.
_CONTINUE = {"head"}
_MIN_LENGTH = 0.02

SHAPE_KEY_PREFIX = "shape_"
CORRECTIVE_PREFIX = "pose_"
SLIDER_RANGE = 10.0  # the widest range Blender allows a shape key
INFERRED_BONES = "Inferred"  # bone collection of the joints the photo did not show
INFERRED_COLOUR = "THEME01"  # red in Blender's default theme


def bone_tails(joints: np.ndarray) -> np.ndarray:
    """(55, 3) tail of each bone for heads at `joints` (armature space)."""
    children: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for joint, parent in enumerate(JOINT_PARENTS):
        if parent >= 0:
            children[parent].append(joint)
    tails = np.empty_like(joints)
    for joint, name in enumerate(JOINT_NAMES):
        kids = children[joint]
        target = None
        if name in _PREFERRED_CHILD:
            target = joints[JOINT_NAMES.index(_PREFERRED_CHILD[name])]
        elif len(kids) == 1 and name not in _CONTINUE:
            target = joints[kids[0]]
        if target is None or np.linalg.norm(target - joints[joint]) < _MIN_LENGTH:
            parent = JOINT_PARENTS[joint]
            direction = joints[joint] - joints[parent] if parent >= 0 else np.array([0.0, 0.0, 1.0])
            length = max(0.5 * np.linalg.norm(direction), _MIN_LENGTH)
            direction = direction / max(np.linalg.norm(direction), 1e-9)
            target = joints[joint] + direction * length
        tails[joint] = target
    return tails


def build_armature(
    name: str, rest_joints_model: np.ndarray, collection: bpy.types.Collection
) -> bpy.types.Object:
    """An armature with the 55 SMPL-X bones, heads at the rest joints."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    joints = rest_joints_model @ MODEL_TO_BLENDER.T
    tails = bone_tails(joints)
    with edit_mode(obj):
        edit_bones = []
        for joint, bone_name in enumerate(JOINT_NAMES):
            bone = data.edit_bones.new(bone_name)
            bone.head = joints[joint]
            bone.tail = tails[joint]
            bone.roll = 0.0
            parent = JOINT_PARENTS[joint]
            if parent >= 0:
                bone.parent = edit_bones[parent]
            edit_bones.append(bone)
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    data.display_type = "STICK"
    obj.show_in_front = True
    return obj


@contextmanager
def edit_mode(armature: bpy.types.Object) -> Iterator[None]:
    """Edit mode on `armature` (bones can only be made or moved there), then back to the
    mode it was in; the override makes mode_set work headless too."""
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    previous_mode = armature.mode
    view_layer.objects.active = armature
    with bpy.context.temp_override(active_object=armature, object=armature, selected_objects=[armature]):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            yield
        finally:
            bpy.ops.object.mode_set(mode=previous_mode if previous_mode != "EDIT" else "OBJECT")
    view_layer.objects.active = previous_active


def rest_shape(mesh: bpy.types.Object) -> np.ndarray:
    """(V, 3) rest vertices with the shape and expression keys mixed in (armature space);
    corrective keys are left out, they belong to the pose."""
    keys = mesh.data.shape_keys.key_blocks
    count = len(mesh.data.vertices)
    basis = np.empty(count * 3)
    keys[0].data.foreach_get("co", basis)
    mixed = basis.copy()
    co = np.empty(count * 3)
    for key in keys[1:]:
        if key.name.startswith(CORRECTIVE_PREFIX) or key.mute or key.value == 0.0:
            continue
        key.data.foreach_get("co", co)
        mixed += key.value * (co - basis)
    return mixed.reshape(count, 3)


def fit_bones_to_shape(armature: bpy.types.Object, mesh: bpy.types.Object, j_regressor: np.ndarray) -> None:
    """Move the bones to the joints of the body's current shape (after the shape sliders
    moved), as SMPL-X regresses them. Bones are only translated, keeping orientation and
    length, so the pose and the correctives' drivers stay valid."""
    joints = j_regressor.astype(np.float64) @ rest_shape(mesh)
    with edit_mode(armature):
        for joint, bone_name in enumerate(JOINT_NAMES):
            bone = armature.data.edit_bones[bone_name]
            offset = Vector(joints[joint]) - bone.head
            bone.translate(offset)


def bone_frames_model(armature: bpy.types.Object) -> np.ndarray:
    """(55, 3, 3) each bone's rest axes in model space (C_j of `correctives`)."""
    frames = np.empty((NUM_JOINTS, 3, 3))
    for joint, bone_name in enumerate(JOINT_NAMES):
        rest = np.array(armature.data.bones[bone_name].matrix_local.to_3x3())
        frames[joint] = MODEL_TO_BLENDER.T @ rest
    return frames


def bone_quaternions(frames: np.ndarray, local_rotations_model: np.ndarray) -> np.ndarray:
    """(55, 4) bone-local quaternions (w, x, y, z) for model-space local rotations; the
    root's rotation is the armature object's, so the pelvis gets the identity."""
    bone_local = np.einsum("jba,jbc,jcd->jad", frames, local_rotations_model, frames)
    bone_local[0] = np.eye(3)
    return numpy_body.matrix_to_quaternion(bone_local)


def mark_inferred_bones(armature: bpy.types.Object, names: list[str]) -> None:
    """Gather the bones of `names` (joints no seen keypoint moved) in the bone collection
    INFERRED_BONES, drawn in its own colour, so the artist sees what to check."""
    inferred = armature.data.collections.new(INFERRED_BONES)
    for name in names:
        inferred.assign(armature.data.bones[name])
        armature.data.bones[name].color.palette = INFERRED_COLOUR
        armature.pose.bones[name].color.palette = INFERRED_COLOUR


def inferred_bones(armature: bpy.types.Object) -> list[str]:
    """Names of the bones `mark_inferred_bones` gathered, in skeleton order."""
    inferred = armature.data.collections.get(INFERRED_BONES)
    members = {bone.name for bone in inferred.bones} if inferred is not None else set()
    return [name for name in JOINT_NAMES if name in members]


def set_pose(armature: bpy.types.Object, quaternions: np.ndarray) -> None:
    for joint, bone_name in enumerate(JOINT_NAMES):
        pose_bone = armature.pose.bones[bone_name]
        pose_bone.rotation_mode = "QUATERNION"
        pose_bone.rotation_quaternion = Quaternion(quaternions[joint])
        pose_bone.location = (0.0, 0.0, 0.0)
        pose_bone.scale = (1.0, 1.0, 1.0)


def build_mesh(
    name: str,
    data: BodyModelData,
    rest_vertices_model: np.ndarray,
    armature: bpy.types.Object,
    collection: bpy.types.Collection,
) -> bpy.types.Object:
    """The skinned body: rest mesh as given (fitted shape baked in), one vertex group per
    joint from the model's weights, an Armature modifier, parented to the armature."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(rest_vertices_model @ MODEL_TO_BLENDER.T, [], data.faces.tolist())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    groups = [obj.vertex_groups.new(name=bone_name) for bone_name in JOINT_NAMES]
    vertex_ids, joint_ids = np.nonzero(data.weights > 1e-6)
    for vertex, joint in zip(vertex_ids.tolist(), joint_ids.tolist(), strict=True):
        groups[joint].add([vertex], float(data.weights[vertex, joint]), "REPLACE")
    obj.parent = armature
    obj.matrix_parent_inverse = Matrix.Identity(4)
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    return obj


def _basis(obj: bpy.types.Object) -> np.ndarray:
    """The basis key's coordinates, flat float32 (made first if the mesh has no keys)."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    basis = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.shape_keys.key_blocks[0].data.foreach_get("co", basis)
    return basis


def _add_key(
    obj: bpy.types.Object, basis: np.ndarray, name: str, deltas_blender: np.ndarray, value: float
) -> bpy.types.ShapeKey:
    key = obj.shape_key_add(name=name, from_mix=False)
    key.data.foreach_set("co", basis + deltas_blender.astype(np.float32).ravel())
    key.slider_min, key.slider_max = -SLIDER_RANGE, SLIDER_RANGE
    key.value = value  # Blender 5.0 starts new keys at 1.0
    return key


def add_blend_keys(
    obj: bpy.types.Object, directions_model: np.ndarray, names: list[str], values: np.ndarray
) -> list[bpy.types.ShapeKey]:
    """One shape key per direction (V, 3, K) in model space, set to `values`."""
    basis = _basis(obj)
    deltas = np.einsum("ab,vbk->kva", MODEL_TO_BLENDER, directions_model.astype(np.float64))
    return [_add_key(obj, basis, name, deltas[k], float(values[k])) for k, name in enumerate(names)]


def add_corrective_keys(obj: bpy.types.Object, data: BodyModelData, armature: bpy.types.Object) -> int:
    """486 pose-corrective keys, each driven by its bone's quaternion through a simple
    expression (see `correctives`). Returns how many were made (0 without posedirs)."""
    if not data.has_pose_correctives:
        return 0
    basis = _basis(obj)
    frames = bone_frames_model(armature)
    made = 0
    for joint in range(1, NUM_JOINTS):
        forms = correctives.feature_forms(frames[joint])
        bone_name = JOINT_NAMES[joint]
        for a in range(3):
            for b in range(3):
                column = 9 * (joint - 1) + 3 * a + b
                direction = data.posedirs[:, :, column].astype(np.float64)
                if not np.any(direction):
                    continue
                key = _add_key(
                    obj, basis, f"{CORRECTIVE_PREFIX}{bone_name}_{a}{b}", direction @ MODEL_TO_BLENDER.T, 0.0
                )
                _drive(key, armature, bone_name, correctives.expression(forms[a, b]))
                made += 1
    return made


def _drive(key: bpy.types.ShapeKey, armature: bpy.types.Object, bone_name: str, text: str) -> None:
    driver = key.driver_add("value").driver
    driver.type = "SCRIPTED"
    for variable_name, transform_type in zip(correctives.VARIABLES, correctives.TRANSFORM_TYPES, strict=True):
        variable = driver.variables.new()
        variable.name = variable_name
        variable.type = "TRANSFORMS"
        target = variable.targets[0]
        target.id = armature
        target.bone_target = bone_name
        target.transform_type = transform_type
        target.rotation_mode = "QUATERNION"
        target.transform_space = "LOCAL_SPACE"
    rest = driver.variables.new()
    rest.name = correctives.REST_VARIABLE
    rest.type = "SINGLE_PROP"
    rest.targets[0].id_type = "ARMATURE"
    rest.targets[0].id = armature.data
    rest.targets[0].data_path = "pose_position"
    driver.expression = text
