"""Which joint rotations a set of seen keypoints pins down, and which are only inferred.

A joint's rotation moves every surface point skinned to it or to a joint below it, and
every joint below it (not its own centre). So a seen keypoint is evidence for the joints
whose rotation moves it: all ancestors of the joint it hangs on, and that joint too when
the keypoint is a surface point (a heel says how the ankle turned; the ankle's own centre
does not). A joint with no seen keypoint below it, such as a knee cut off by the frame,
was inferred by the priors, and the artist should check it.

Plain numpy over a `BodyModelData`, so Blender's process and the solver can both use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model_file import BodyModelData
from .names import CONTOUR_NAMES, FACE_LANDMARK_NAMES, JOINT_NAMES, VERTEX_KEYPOINT_NAMES


def keypoint_joints(data: BodyModelData, names: Sequence[str]) -> np.ndarray:
    """(K,) int: the joint each keypoint of `names` hangs on. A joint keypoint hangs on
    itself; a surface point (nose, toes, finger tips, face landmarks) on the joint whose
    skinning weight on its vertices is largest."""
    joints = []
    for name in names:
        if name in JOINT_NAMES:
            joints.append(JOINT_NAMES.index(name))
        else:
            weights = _surface_weights(data, name)
            joints.append(int(np.argmax(weights)))
    return np.asarray(joints, dtype=np.int64)


def _surface_weights(data: BodyModelData, name: str) -> np.ndarray:
    """(J,) skinning weights of the surface point `name`: its vertex's, or the weights of
    its face's corners mixed by the point's barycentric coordinates (all of the contour's
    candidate faces for a contour point)."""
    if name in VERTEX_KEYPOINT_NAMES:
        return data.weights[data.vertex_keypoint_ids[VERTEX_KEYPOINT_NAMES.index(name)]]
    if name in FACE_LANDMARK_NAMES:
        landmark = FACE_LANDMARK_NAMES.index(name)
        corners = data.faces[data.landmark_faces[landmark]]
        return data.landmark_bary[landmark] @ data.weights[corners]
    if name in CONTOUR_NAMES and data.contour_faces is not None:
        point = CONTOUR_NAMES.index(name)
        corners = data.faces[data.contour_faces[:, point]]  # (79, 3)
        return np.einsum("fc,fcj->j", data.contour_bary[:, point], data.weights[corners])
    raise ValueError(f"{name!r} is not a keypoint of {data.path}")


def rotations_seen(
    parents: Sequence[int], keypoint_joint: np.ndarray, is_surface: np.ndarray, seen: np.ndarray
) -> np.ndarray:
    """(J,) bool: the joints whose rotation moves at least one seen keypoint.

    parents (J,) the kinematic tree, -1 at the root; keypoint_joint (K,) from
    `keypoint_joints`; is_surface (K,) bool, True for surface points; seen (K,) bool.
    """
    result = np.zeros(len(parents), dtype=bool)
    for joint, surface in zip(keypoint_joint[seen], is_surface[seen], strict=True):
        joint = int(joint) if surface else parents[int(joint)]
        while joint >= 0 and not result[joint]:
            result[joint] = True
            joint = parents[joint]
    return result


def inferred_joints(data: BodyModelData, names: Sequence[str], seen: np.ndarray) -> list[str]:
    """Names of JOINT_NAMES whose rotation no seen keypoint of `names` (K,) moves."""
    is_surface = np.array([name not in JOINT_NAMES for name in names])
    moved = rotations_seen(data.parents.tolist(), keypoint_joints(data, names), is_surface, np.asarray(seen))
    return [name for name, known in zip(JOINT_NAMES, moved, strict=True) if not known]
