"""The one list of joint and keypoint names, shared by every room of the package.

The SMPL-X kinematic tree has 55 joints. Fitting also uses points that are not joints:
21 points picked on the surface (nose, eyes, ears, toes, heels, finger tips) and the
51 face landmarks of the iBUG-68 scheme without the jaw contour (iBUG points 17-67),
optionally followed by the 17 contour points (iBUG 0-16). A body model's forward pass
returns keypoints in exactly the order of :data:`KEYPOINT_NAMES` (plus
:data:`CONTOUR_NAMES` when asked), so a name's index here is its index there.
Pure Python: importable from Blender, the worker and the solver alike.
"""

from __future__ import annotations

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "jaw",
    "left_eye_smplhf",
    "right_eye_smplhf",
    *(f"left_{finger}{k}" for finger in _FINGERS for k in (1, 2, 3)),
    *(f"right_{finger}{k}" for finger in _FINGERS for k in (1, 2, 3)),
)

# Parent of each joint in JOINT_NAMES (-1 for the root), as in the SMPL-X kintree_table.
JOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip

NUM_JOINTS = len(JOINT_NAMES)  # 55
NUM_BODY_JOINTS = 21  # left_hip .. right_wrist: the joints of `body_pose`
NUM_HAND_JOINTS = 15  # per hand

# Slices of JOINT_NAMES by the parameter block that rotates them.
BODY_JOINTS = slice(1, 22)
JAW_JOINT = 22
LEFT_EYE_JOINT = 23
RIGHT_EYE_JOINT = 24
LEFT_HAND_JOINTS = slice(25, 40)
RIGHT_HAND_JOINTS = slice(40, 55)
# The pose parameter blocks in the order the full pose (all joints) concatenates them,
# with the number of joints each rotates (three axis-angle numbers per joint).
POSE_BLOCKS: tuple[tuple[str, int], ...] = (
    ("global_orient", 1), ("body_pose", NUM_BODY_JOINTS), ("jaw_pose", 1), ("leye_pose", 1), ("reye_pose", 1),
    ("left_hand_pose", NUM_HAND_JOINTS), ("right_hand_pose", NUM_HAND_JOINTS),
)  # fmt: skip

# Surface points that fitting needs, in the order the forward pass returns them (after
# the 55 joints). Each body model says which vertex gives each point.
VERTEX_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
    *(f"left_{tip}_tip" for tip in ("thumb", "index", "middle", "ring", "pinky")),
    *(f"right_{tip}_tip" for tip in ("thumb", "index", "middle", "ring", "pinky")),
)

# iBUG-68 numbering (0-based): 0-16 jaw contour, 17-26 brows, 27-35 nose, 36-47 eyes,
# 48-67 mouth. The static landmarks are 17-67; the contour is dynamic (depends on yaw).
FACE_LANDMARK_NAMES: tuple[str, ...] = tuple(f"face_{i:02d}" for i in range(17, 68))
CONTOUR_NAMES: tuple[str, ...] = tuple(f"face_{i:02d}" for i in range(0, 17))

KEYPOINT_NAMES: tuple[str, ...] = JOINT_NAMES + VERTEX_KEYPOINT_NAMES + FACE_LANDMARK_NAMES
KEYPOINT_NAMES_WITH_CONTOUR: tuple[str, ...] = KEYPOINT_NAMES + CONTOUR_NAMES


def keypoint_index(name: str) -> int:
    """Index of a keypoint in the forward pass output (contour names come last)."""
    return KEYPOINT_NAMES_WITH_CONTOUR.index(name)
