"""The body model in plain numpy, for Blender's process (which never imports torch).

The builders need the fitted body's shaped rest mesh and rest joints; tests need a
reference forward pass to check the Blender rig against. Conventions are those of
`model.BodyModel` (SMPL-X): joints are regressed from the mesh shaped by betas and
expression, pose correctives take (R - I) of every joint but the root, flattened row by
row, and the root rotation turns the body about the rest pelvis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model_file import BodyModelData
from .names import (
    JAW_JOINT,
    LEFT_EYE_JOINT,
    LEFT_HAND_JOINTS,
    NUM_BODY_JOINTS,
    NUM_JOINTS,
    RIGHT_EYE_JOINT,
    RIGHT_HAND_JOINTS,
)


@dataclass(frozen=True)
class PosedBody:
    """vertices (V, 3) and joints (55, 3) posed; world_rotations (55, 3, 3)."""

    vertices: np.ndarray
    joints: np.ndarray
    world_rotations: np.ndarray


def _coefficients(data: BodyModelData, betas, expression) -> tuple[np.ndarray, np.ndarray]:
    """Betas and expression cut or zero-padded to the model's sizes (a result may carry
    fewer or more directions than the file has)."""
    out = []
    for values, size in ((betas, data.num_shape), (expression, data.num_expression)):
        values = np.zeros(0) if values is None else np.asarray(values, dtype=np.float64).ravel()
        padded = np.zeros(size)
        padded[: min(size, values.size)] = values[:size]
        out.append(padded)
    return out[0], out[1]


def shaped_vertices(data: BodyModelData, betas=None, expression=None) -> np.ndarray:
    """Rest-pose vertices (V, 3) with shape and expression blended in."""
    b, e = _coefficients(data, betas, expression)
    vertices = data.v_template.astype(np.float64)
    vertices = vertices + data.shapedirs.astype(np.float64) @ b
    if e.size:
        vertices = vertices + data.exprdirs.astype(np.float64) @ e
    return vertices


def rest_joints(data: BodyModelData, betas=None, expression=None) -> np.ndarray:
    """Rest-pose joints (55, 3) of the shaped body."""
    return data.j_regressor.astype(np.float64) @ shaped_vertices(data, betas, expression)


def axis_angle_to_matrix(axis_angle) -> np.ndarray:
    """Rodrigues' formula: (..., 3) axis-angle -> (..., 3, 3)."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.where(angle > 1e-12, angle, 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*x.shape, 3, 3)
    sin, cos = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + sin * skew + (1.0 - cos) * (skew @ skew)


def matrix_to_quaternion(matrix) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate formulas; each row uses the one with the largest divisor (stable).
    candidates = np.stack(
        [
            np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                      m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - trace,
                      m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                      1 + 2 * m[..., 1, 1] - trace, m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                      m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - trace], -1),
        ],
        axis=-2,
    )  # fmt: skip
    diagonal = np.stack([1 + trace, 1 + 2 * m[..., 0, 0] - trace, 1 + 2 * m[..., 1, 1] - trace,
                         1 + 2 * m[..., 2, 2] - trace], -1)  # fmt: skip
    best = np.take_along_axis(candidates, diagonal.argmax(-1)[..., None, None], axis=-2)[..., 0, :]
    q = best / np.linalg.norm(best, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(quaternion) -> np.ndarray:
    """(..., 4) w, x, y, z (any norm, either sign) -> (..., 3) axis-angle of at most pi."""
    q = np.asarray(quaternion, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)
    sine = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sine, q[..., :1])
    # Near zero the turn is 2 * the vector part (angle / sin(angle / 2) -> 2).
    scale = np.where(sine > 1e-8, angle / np.maximum(sine, 1e-12), 2.0)
    return q[..., 1:] * scale


def axis_angle_to_quaternion(axis_angle) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions w, x, y, z (w >= 0)."""
    return matrix_to_quaternion(axis_angle_to_matrix(axis_angle))


def matrix_to_axis_angle(matrix) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) axis-angle, angles in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def full_pose(person) -> np.ndarray:
    """(55, 3) axis-angle of all joints from a result's person (hands are full 45-d with
    the mean included, as the result format says)."""
    pose = np.concatenate(
        [
            person.global_orient, person.body_pose, person.jaw_pose, person.leye_pose,
            person.reye_pose, person.left_hand_pose, person.right_hand_pose,
        ]
    )  # fmt: skip
    return pose.astype(np.float64).reshape(NUM_JOINTS, 3)


def pose_blocks(pose) -> dict:
    """(..., 55, 3) axis-angle of all joints (a numpy array or a torch tensor) -> the body
    model's pose parameters by name, each (..., 3 x its joints): `full_pose` undone."""
    def joints(rows):
        part = pose[..., rows, :]
        return part.reshape(*part.shape[:-2], -1)

    return {
        "global_orient": pose[..., 0, :],
        "body_pose": joints(slice(1, 1 + NUM_BODY_JOINTS)),
        "jaw_pose": pose[..., JAW_JOINT, :],
        "leye_pose": pose[..., LEFT_EYE_JOINT, :],
        "reye_pose": pose[..., RIGHT_EYE_JOINT, :],
        "left_hand_pose": joints(LEFT_HAND_JOINTS),
        "right_hand_pose": joints(RIGHT_HAND_JOINTS),
    }


def pose_feature(rotations: np.ndarray) -> np.ndarray:
    """(R - I) of joints 1..54 flattened row-major: (486,), the correctives' input."""
    return (rotations[1:] - np.eye(3)).reshape(-1)


def forward(
    data: BodyModelData,
    pose: np.ndarray,
    betas=None,
    expression=None,
    transl=None,
    correctives: bool = True,
) -> PosedBody:
    """Pose the body: pose (55, 3) axis-angle or (55, 3, 3) matrices."""
    pose = np.asarray(pose, dtype=np.float64)
    rotations = pose if pose.ndim == 3 else axis_angle_to_matrix(pose)
    rest = shaped_vertices(data, betas, expression)
    joints = data.j_regressor.astype(np.float64) @ rest
    if correctives and data.posedirs is not None:
        rest = rest + data.posedirs.astype(np.float64) @ pose_feature(rotations)
    world_r = np.zeros((NUM_JOINTS, 3, 3))
    world_t = np.zeros((NUM_JOINTS, 3))
    for joint, parent in enumerate(data.parents):
        if parent < 0:
            world_r[joint], world_t[joint] = rotations[joint], joints[joint]
        else:
            world_r[joint] = world_r[parent] @ rotations[joint]
            world_t[joint] = world_r[parent] @ (joints[joint] - joints[parent]) + world_t[parent]
    translation = world_t - np.einsum("jab,jb->ja", world_r, joints)
    blended_r = np.einsum("vj,jab->vab", data.weights.astype(np.float64), world_r)
    blended_t = data.weights.astype(np.float64) @ translation
    vertices = np.einsum("vab,vb->va", blended_r, rest) + blended_t
    offset = np.zeros(3) if transl is None else np.asarray(transl, dtype=np.float64)
    return PosedBody(vertices + offset, world_t + offset, world_r)
