"""Fold MakeHuman's 163-bone rig into SMPL-X's 55 joints, and pose a rig in numpy.

Each SMPL-X joint starts at one or more MakeHuman bones (`JOINT_START_BONES`); every
other bone belongs to the joint of its nearest ancestor that starts one, so its skin
weights are added to that joint's. Twist and helper bones (upperarm02, lowerarm02,
neck02/03, the face's muscle bones, tongue, breasts, toes) thus ride rigidly with the
SMPL-X joint that carries them. A joint's pivot is the mean head of its start bones.
"""

from __future__ import annotations

import numpy as np

from ...body_model.names import JOINT_NAMES

_FINGER_BONES = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}  # MakeHuman finger numbers


def _start_bones() -> dict[str, tuple[str, ...]]:
    table = {
        "pelvis": ("spine05",),  # the root bone's head lies behind the sacrum; spine05's is central
        "spine1": ("spine03",),
        "spine2": ("spine02",),
        "spine3": ("spine01",),
        "neck": ("neck01",),
        "head": ("head",),
        "jaw": ("jaw",),
        "left_eye_smplhf": ("eye.L",),
        "right_eye_smplhf": ("eye.R",),
    }
    for side, tag in (("left", "L"), ("right", "R")):
        table.update({
            f"{side}_hip": (f"upperleg01.{tag}",),
            f"{side}_knee": (f"lowerleg01.{tag}",),
            f"{side}_ankle": (f"foot.{tag}",),
            f"{side}_foot": tuple(f"toe{toe}-1.{tag}" for toe in range(1, 6)),  # the ball of the foot
            f"{side}_collar": (f"clavicle.{tag}",),
            f"{side}_shoulder": (f"upperarm01.{tag}",),
            f"{side}_elbow": (f"lowerarm01.{tag}",),
            f"{side}_wrist": (f"wrist.{tag}",),
        })  # fmt: skip
        for finger, number in _FINGER_BONES.items():
            for level in (1, 2, 3):
                table[f"{side}_{finger}{level}"] = (f"finger{number}-{level}.{tag}",)
    return table


JOINT_START_BONES: dict[str, tuple[str, ...]] = _start_bones()


def bone_to_joint(bone_names: tuple[str, ...], bone_parents: np.ndarray) -> np.ndarray:
    """(B,) the SMPL-X joint each bone belongs to. Bones come parents first."""
    starts = {bone: JOINT_NAMES.index(joint) for joint, bones in JOINT_START_BONES.items() for bone in bones}
    owner = np.full(len(bone_names), -1, dtype=np.int64)
    for bone, name in enumerate(bone_names):
        parent = bone_parents[bone]
        owner[bone] = starts.get(name, owner[parent] if parent >= 0 else 0)  # the root bone joins the pelvis
    if np.any(owner < 0) or len(set(owner.tolist())) != len(JOINT_NAMES):
        raise ValueError("the MakeHuman rig does not cover every SMPL-X joint")
    return owner


def fold_weights(bone_weights: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(V, B) bone weights -> (V, 55) joint weights (each bone's weight added to its joint's)."""
    weights = np.zeros((bone_weights.shape[0], len(JOINT_NAMES)))
    for bone, joint in enumerate(owner):
        weights[:, joint] += bone_weights[:, bone]
    return weights


def joint_pivots(bone_heads: np.ndarray, bone_names: tuple[str, ...]) -> np.ndarray:
    """(..., B, 3) bone heads -> (..., 55, 3) SMPL-X joint pivots."""
    index = {name: i for i, name in enumerate(bone_names)}
    return np.stack(
        [
            bone_heads[..., [index[b] for b in JOINT_START_BONES[joint]], :].mean(axis=-2)
            for joint in JOINT_NAMES
        ],
        axis=-2,
    )


def rotation_vector_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3,) axis * angle of the smallest rotation taking direction a to direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis)
    return np.zeros(3) if sin < 1e-12 else axis / sin * np.arctan2(sin, float(np.dot(a, b)))


def twist_angle(vector: np.ndarray, goal: np.ndarray, axis: np.ndarray) -> float:
    """Angle of the rotation about `axis` that best turns `vector` towards `goal`."""
    axis = axis / np.linalg.norm(axis)
    a, b = vector - axis * np.dot(vector, axis), goal - axis * np.dot(goal, axis)
    return float(np.arctan2(np.dot(np.cross(a, b), axis), np.dot(a, b)))


def axis_angle(vector: np.ndarray) -> np.ndarray:
    """(3,) axis * angle -> (3, 3) rotation matrix (Rodrigues)."""
    angle = np.linalg.norm(vector)
    if angle < 1e-12:
        return np.eye(3)
    k = vector / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def world_transforms(local: np.ndarray, pivots: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Forward kinematics. local (N, 3, 3) rotations about each pivot, expressed in the
    rest frame's axes (as SMPL-X's axis-angle pose); pivots (N, 3); parents (N,) with
    parents before children. Returns (N, 3, 4): rest point -> posed point."""
    transforms = np.zeros((len(parents), 3, 4))
    for node, parent in enumerate(parents):
        rotation, offset = local[node], pivots[node] - local[node] @ pivots[node]
        if parent >= 0:
            rotation, offset = (
                transforms[parent, :, :3] @ rotation,
                transforms[parent] @ np.append(offset, 1.0),
            )
        transforms[node, :, :3], transforms[node, :, 3] = rotation, offset
    return transforms
